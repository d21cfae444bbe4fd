"""Recipes: declarative TOML files (strict schema) naming the model, data and settings of one result."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import RunConfig, parse_alpha
from .errors import SteerAudioError

#: the run defaults, written once (config.py's RunConfig); a recipe overrides what it names
_R = RunConfig()
#: recipe fields that are not run settings (they describe the result)
_ABOUT = {"name", "reproduces", "pairs_with"}


class Recipe(BaseModel):
    """A recipe file's schema: the settings of `RunConfig` a result needs (`run_config()` builds it)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    reproduces: str
    pairs_with: str = ""
    model: str = _R.model
    data: str = _R.data
    audio_root: str | None = None
    calib: str | None = _R.calib
    calib_fraction: float | None = _R.calib_fraction
    seed: int = _R.seed
    k: int = _R.k
    k_sweep: list[int] = Field(default_factory=lambda: list(_R.k_sweep))
    seeds: int = _R.seeds
    #: None (or empty): the registry's default methods
    method: list[str] | None = None
    heads: str = _R.heads
    #: a number, or "auto" (chosen on calibration over `grid`)
    alpha: str = "auto"
    grid: list[float] = Field(default_factory=lambda: list(_R.grid))
    negative: str = _R.negative
    batch_size: int = _R.batch_size
    limit: int | None = _R.limit
    device: str | None = _R.device
    dtype: str | None = _R.dtype
    devices: int = _R.devices
    permute_options: int = _R.permute_options
    #: logits (the paper's protocol) | generate (also free-form answers scored by MMAU's string match)
    protocol: str = _R.protocol
    #: the generate protocol's prompt: "model" (the run's own) or a data/prompts.py GENERATION_TEMPLATES name
    template: str = _R.template
    max_new_tokens: int = _R.max_new_tokens
    #: how audio reaches the decoder locally: clip-length (models/audio_embed.py) | full-window (the model's own
    #: forward, what a remote server runs); the default is RunConfig's (a test holds them equal)
    audio_encoder: Literal["clip-length", "full-window"] = "clip-length"
    #: capture speed levers (capture/fast.py): auto | none | a comma list; RunConfig's default
    capture_levers: str = "auto"

    def run_config(self) -> RunConfig:
        """The run this recipe describes (raises SteerAudioError for an alpha that is not a number or auto)."""
        kw = self.model_dump(exclude=_ABOUT | {"method", "alpha", "audio_root"})
        return RunConfig(
            **kw,
            methods=list(self.method) if self.method else list(_R.methods),
            alpha=parse_alpha(self.alpha),
            audio_root=Path(self.audio_root) if self.audio_root else None,
        )

    def cli_kwargs(self, out: Path) -> dict[str, Any]:
        """The equivalent `steer-audio evaluate` keyword arguments (cli.evaluate's parameters)."""
        return self.run_config().cli_kwargs(out)


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
