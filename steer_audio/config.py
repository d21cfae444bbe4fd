"""The run configuration: every setting of one `discover` / `evaluate` run, typed, with its default written once.

`RunConfig` is what the pipeline (pipeline.py) consumes. The CLI (cli.py) builds one from its options, a
recipe (recipes.py) from its TOML file; the same settings give equal configurations, whichever built them.
`EvalConfig`, the part the Evaluator and the methods read, is its base class.

From Python, the same run as `steer-audio evaluate --model tiny --data demo --k 8 --k-sweep 8`:

    from steer_audio.config import RunConfig
    from steer_audio.pipeline import execute
    summary = execute("evaluate", RunConfig(model="tiny", data="demo", k=8, k_sweep=[8]), Path("runs/x"))

This module imports no torch or numpy: the CLI reads its option defaults from here at import time."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import SteerAudioError
from .steer import methods as registry

#: every registered method, in registry order; DEFAULT_METHODS: those run when --method is not given
METHODS = registry.names()
DEFAULT_METHODS = registry.defaults()
DEFAULT_GRID = [0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0]
#: the generate protocol's prompt when none is named: the run's own (evaluate/generate_protocol.py)
OWN_TEMPLATE = "model"


@dataclass
class EvalConfig:
    """The evaluation settings (the Evaluator and each method read these)."""

    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    heads: str = "specialist"
    alpha: float | None = None  # None = auto (chosen on calibration over `grid`)
    grid: list[float] = field(default_factory=lambda: list(DEFAULT_GRID))
    k: int = 20
    k_sweep: list[int] = field(default_factory=lambda: [10, 20, 30])
    seeds: int = 10
    ranking: str = "abs"
    normalise: bool = True
    draws: int = 100
    seed: int = 0
    controls: bool = True
    batch_size: int = 8
    reuse_prefix: bool = True

    def validate(self, n_heads: int) -> None:
        bad = [x for x in self.methods if x not in METHODS]
        if bad:
            raise SteerAudioError(f"unknown method(s) {bad}: use {', '.join(METHODS)}")
        if self.heads not in ("specialist", "random"):
            raise SteerAudioError(f"--heads must be specialist or random, got {self.heads!r}")
        grid = [self.alpha] if self.alpha is not None else self.grid
        if not grid or not all(math.isfinite(a) for a in grid):
            raise SteerAudioError(f"the alpha grid must be non-empty and finite, got {grid}")
        for k in {self.k, *self.k_sweep}:
            if not 1 <= k <= n_heads:
                raise SteerAudioError(f"K={k} is outside 1..{n_heads} (the model has {n_heads} heads)")

    @property
    def alphas(self) -> list[float]:
        return [float(self.alpha)] if self.alpha is not None else [float(a) for a in self.grid]

    def eval_fields(self) -> dict[str, Any]:
        """The evaluation settings alone (summary.json's `config`), also of a RunConfig."""
        return {f.name: getattr(self, f.name) for f in fields(EvalConfig)}


@dataclass
class RunConfig(EvalConfig):
    """One run: the model, the data and its splits, the capture, and the evaluation (the base class).

    `methods` always starts with the baseline (every table is read against it)."""

    model: str = "mini"  # the embedded real model (scripts/setup_mini.sh)
    data: str = "listen-bench"  # its benchmark; data/named.py resolves names to files
    audio_root: Path | None = None
    calib: str | None = None  # a separate labelled file as D_cal
    calib_fraction: float | None = None  # or a seeded, stratified carve of `data`
    calib_split: str | None = None  # or the file's `split` field (default names: calib / test)
    eval_split: str | None = None
    limit: int | None = None
    negative: str = "silence"
    device: str | None = None
    dtype: str | None = None
    remote: str | None = None  # an NDIF server URL, or "local"
    strict: bool = False
    revision: str | None = None
    devices: int = 1
    backend: str = "processes"  # who runs the `devices` replicas: processes | ray
    ray: str | None = None  # a Ray cluster address (implies backend ray)
    audio_encoder: str = "clip-length"  # models/audio_embed.py | full-window
    capture_levers: str = "auto"  # capture/fast.py: auto (the bit-identical ones on a GPU) | none | a list
    from_run: Path | None = None  # reuse this run directory's capture cache
    permute_options: int = 1
    protocol: str = "logits"  # logits | generate (also greedy decoding, MMAU's string match)
    template: str = OWN_TEMPLATE
    max_new_tokens: int = 32

    def __post_init__(self) -> None:
        if "baseline" not in self.methods:
            self.methods = ["baseline", *self.methods]

    def check(self) -> None:
        """Every check that needs no model (the CLI runs these before anything is loaded or written)."""
        from . import cli_checks as cc

        cc.check_alphas("--grid", self.grid)
        if self.alpha is not None:
            cc.check_alphas("--alpha", [self.alpha])
        self.generate_config()
        cc.check_k(self.k, self.k_sweep)
        cc.check_ranking(self.ranking)
        cc.check_dtype(self.dtype)
        cc.check_device(self.device)
        cc.check_positive("--limit", self.limit)
        cc.check_positive("--batch-size", self.batch_size)
        cc.check_positive("--devices", self.devices)
        cc.check_calib(self.calib, self.calib_fraction)
        cc.check_capture_levers(self.capture_levers)

    def generate_config(self) -> Any:
        """The generate protocol's settings (evaluate/generate_protocol.GenerateConfig), None for logits."""
        from .evaluate.generate_protocol import PROTOCOLS, GenerateConfig

        if self.protocol not in PROTOCOLS:
            raise SteerAudioError(f"unknown --protocol {self.protocol!r}: use {' | '.join(PROTOCOLS)}")
        if self.protocol == "logits":
            return None
        gen = GenerateConfig(
            template=self.template, max_new_tokens=self.max_new_tokens, batch_size=self.batch_size
        )
        gen.validate()
        return gen

    def cli_kwargs(self, out: Path | None = None) -> dict[str, Any]:
        """The equivalent `steer-audio evaluate` keyword arguments (cli.evaluate's parameters)."""
        return dict(
            model=self.model,
            data=self.data,
            audio_root=self.audio_root,
            calib=self.calib,
            calib_fraction=self.calib_fraction,
            seed=self.seed,
            k=self.k,
            ranking=self.ranking,
            out=out,
            batch_size=self.batch_size,
            negative=self.negative,
            device=self.device,
            dtype=self.dtype,
            remote=self.remote,
            strict=self.strict,
            limit=self.limit,
            revision=self.revision,
            devices=self.devices,
            backend=self.backend,
            ray=self.ray,
            audio_encoder=self.audio_encoder,
            capture_levers=self.capture_levers,
            method=list(self.methods),
            heads=self.heads,
            alpha="auto" if self.alpha is None else str(self.alpha),
            grid=format_numbers(self.grid),
            k_sweep=format_numbers(self.k_sweep),
            seeds=self.seeds,
            from_run=self.from_run,
            controls=self.controls,
            permute_options=self.permute_options,
            protocol=self.protocol,
            max_new_tokens=self.max_new_tokens,
            template=self.template,
        )


def format_numbers(xs: list[float] | list[int]) -> str:
    """A list as the CLI writes it: comma-separated, shortest form (0,0.5,1)."""
    return ",".join(str(int(x)) if float(x).is_integer() else repr(float(x)) for x in xs)


def parse_alpha(alpha: str) -> float | None:
    """`auto` (chosen on calibration, None) or a finite alpha >= 0."""
    from .cli_checks import check_alphas

    if alpha == "auto":
        return None
    try:
        a = float(alpha)
    except ValueError:
        raise SteerAudioError(f"--alpha must be a number or 'auto', got {alpha!r}") from None
    check_alphas("--alpha", [a])
    return a
