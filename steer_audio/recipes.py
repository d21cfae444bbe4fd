"""Recipes: declarative TOML files (strict schema) naming the model, data and settings of one result."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import SteerAudioError
from .evaluate.run import DEFAULT_GRID, EvalConfig

#: the evaluation defaults, written once (evaluate/run.py's EvalConfig); a recipe overrides what it names
_E = EvalConfig()


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    reproduces: str
    pairs_with: str = ""
    model: str = "tiny"
    data: str = "demo"
    audio_root: str | None = None
    calib: str | None = None
    calib_fraction: float | None = None
    seed: int = _E.seed
    k: int = _E.k
    k_sweep: list[int] = Field(default_factory=lambda: list(_E.k_sweep))
    seeds: int = _E.seeds
    method: list[str] | None = None
    heads: str = _E.heads
    alpha: str = "auto"
    grid: list[float] = Field(default_factory=lambda: list(DEFAULT_GRID))
    negative: str = "silence"
    batch_size: int = _E.batch_size
    limit: int | None = None
    device: str | None = None
    dtype: str | None = None
    devices: int = 1
    permute_options: int = 1
    #: logits (the paper's protocol) | generate (also free-form answers scored by MMAU's string match)
    protocol: str = "logits"
    #: the generate protocol's prompt: "model" (the run's own) or a data/prompts.py GENERATION_TEMPLATES name
    template: str = "model"
    max_new_tokens: int = 32
    #: how audio reaches the decoder locally: clip-length (models/audio_embed.py) | full-window (the model's own
    #: forward, what a remote server runs)
    audio_encoder: Literal["clip-length", "full-window"] = "clip-length"

    def cli_kwargs(self, out: Path) -> dict[str, Any]:
        return dict(
            model=self.model,
            data=self.data,
            audio_root=Path(self.audio_root) if self.audio_root else None,
            calib=self.calib,
            calib_fraction=self.calib_fraction,
            seed=self.seed,
            k=self.k,
            ranking="abs",
            out=out,
            batch_size=self.batch_size,
            negative=self.negative,
            device=self.device,
            dtype=self.dtype,
            remote=None,
            strict=False,
            limit=self.limit,
            revision=None,
            method=self.method,
            heads=self.heads,
            alpha=self.alpha,
            grid=",".join(str(g) for g in self.grid),
            k_sweep=",".join(str(k) for k in self.k_sweep),
            seeds=self.seeds,
            from_run=None,
            controls=True,
            devices=self.devices,
            permute_options=self.permute_options,
            protocol=self.protocol,
            template=self.template,
            max_new_tokens=self.max_new_tokens,
            audio_encoder=self.audio_encoder,
        )


def load_recipe(path: Path) -> Recipe:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise SteerAudioError(f"recipe not found: {path}") from e
    except tomllib.TOMLDecodeError as e:
        raise SteerAudioError(f"recipe {path} is not valid TOML: {e}") from e
    try:
        return Recipe(**raw)
    except ValidationError as e:
        msgs = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise SteerAudioError(f"recipe {path}: {msgs}") from e
