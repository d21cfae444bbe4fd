"""The method registry: name -> `Method` (help text, cached or forward-pass, where its code lives).

One table, in the order of `steer-audio evaluate --help`, the README's list and a run. Each entry names
its family module under `steer/methods/` and the function there; the module is imported on first use,
so the CLI's help (built from this table) does not import torch. `steer-audio evaluate --method`
accepts exactly these names."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ...errors import SteerAudioError

if TYPE_CHECKING:
    from .base import MethodContext, MethodResult

Kind = Literal["cached", "forward"]


@dataclass(frozen=True)
class Method:
    """A registry entry: `steer-audio evaluate --method NAME`."""

    name: str
    help: str
    kind: Kind
    #: "module:function" inside steer_audio.steer.methods; the function is run(ctx) -> list[MethodResult]
    target: str
    #: part of the default method set (False: needs data that not every file has)
    default: bool = True

    @property
    def run(self) -> Callable[[MethodContext], list[MethodResult]]:
        module, fn = self.target.split(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), fn)  # type: ignore[no-any-return]


_TABLE = (
    Method("baseline", "no intervention", "cached", "baseline:run"),
    Method(
        "head-guided",
        "the paper's method (Eqs. 4-6): v = sum_l w_l (h^l(x) - h^l(x0)) added to h^L; with the direction "
        "controls (v of another example, mean v, random direction of equal norm) and the K sweep",
        "cached",
        "layer:head_guided",
    ),
    Method(
        "single-layer",
        "v_l added to h^L, the best (layer, alpha) on calibration",
        "cached",
        "layer:single_layer",
    ),
    Method(
        "random-layer",
        "head-guided with K uniformly random heads, alpha chosen per seed (--seeds): the matched random-head "
        "control of the McNemar tests",
        "cached",
        "layer:random_layer",
    ),
    Method(
        "head-level",
        "alpha * sum_h W_O[:, h] dz^{l,h} added after attention (Eqs. 7-9), specialist and random heads",
        "forward",
        "head_level:head_level",
    ),
    Method("aad", "(1 + alpha) logit(x) - alpha logit(x0) (audio-aware decoding)", "cached", "logit:aad"),
    Method(
        "contrastive-options",
        "log p(option | x) - alpha log p(option | x0), over the options",
        "cached",
        "logit:contrastive_options",
    ),
    Method(
        "avs",
        "Adaptive Vector Steering: v_l added at every layer with a depth schedule, norm-preserving",
        "forward",
        "avs:run",
    ),
    Method(
        "gated",
        "head-guided steering only where the listening score s(x) is below a calibration quantile "
        "((quantile, alpha) chosen on calibration)",
        "cached",
        "gated:gated",
    ),
    Method(
        "gated-random",
        "control of gated: the gate uses the listening score of K random heads",
        "cached",
        "gated:gated_control",
    ),
    Method(
        "hint-projected",
        "head-guided with v's component along the calibration hint direction (misleading minus neutral "
        "twins' residuals) removed; needs listen-bench twins",
        "cached",
        "hint:hint_projected",
        default=False,
    ),
    Method(
        "hint-projected-random",
        "control of hint-projected: v's component along a random unit direction removed",
        "cached",
        "hint:hint_projected_random",
        default=False,
    ),
)
REGISTRY: dict[str, Method] = {m.name: m for m in _TABLE}


def get(name: str) -> Method:
    try:
        return REGISTRY[name]
    except KeyError:
        raise SteerAudioError(f"unknown method {name!r}: use {', '.join(REGISTRY)}") from None


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def defaults() -> tuple[str, ...]:
    return tuple(m.name for m in REGISTRY.values() if m.default)


def cli_help() -> str:
    """The `--method` help text: every registered name, forward-pass methods marked."""
    parts = [f"{m.name}{' (forward)' if m.kind == 'forward' else ''}" for m in REGISTRY.values()]
    off = [m.name for m in REGISTRY.values() if not m.default]
    return " | ".join(parts) + f" (repeatable; default: all but {', '.join(off)})"


def markdown_list() -> str:
    """The README's method list (one bullet per method), generated from the registry."""
    return "\n".join(
        f"* `{m.name}` ({'forward passes' if m.kind == 'forward' else 'from the cache'}"
        f"{'' if m.default else '; not in the default set'}): {m.help}"
        for m in REGISTRY.values()
    )
