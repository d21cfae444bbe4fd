"""Layer-guided steering scored from the cache (METHOD.md §4): `head-guided` (Eq. 5, with the direction
controls and the K sweep of Tables 3-4), `single-layer` (best (layer, alpha) on calibration) and
`random-layer` (head-guided with K random heads: the matched random-head control)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...capture.cache import CaptureData
from ...discover.heads import HeadSet, predictions, random_heads, select
from ...errors import SteerAudioError
from ...evaluate.protocol import pick_grid
from .. import cached
from .base import MethodContext, MethodResult

#: seeds of the random head sets are 1000 + s for s < cfg.seeds (shared by random-layer and the K sweep)
RANDOM_SEED_BASE = 1000


def random_set(ctx: MethodContext, k: int, s: int) -> HeadSet:
    return random_heads(ctx.disc.r, k, np.random.default_rng(RANDOM_SEED_BASE + s))


def head_guided(ctx: MethodContext) -> list[MethodResult]:
    res = ctx.layer_steer("head-guided", ctx.main_heads, {"heads": ctx.cfg.heads})
    out = [res]
    if ctx.cfg.controls:
        out += _controls(ctx, ctx.main_heads, res.params["alpha"])
    ctx.extra["k_sweep"] = _k_sweep(ctx)
    return out


def _controls(ctx: MethodContext, hs: HeadSet, a: float) -> list[MethodResult]:
    """Same alpha, other directions: v of another example, the mean v, a random direction of equal norm."""
    v = cached.head_guided_direction(ctx.de, hs)
    g = torch.Generator().manual_seed(ctx.cfg.seed)
    rnd = torch.randn(v.shape, generator=g)
    rnd = rnd / rnd.norm(dim=-1, keepdim=True) * v.norm(dim=-1, keepdim=True)
    dirs = {
        "other-example v": v.roll(1, 0),
        "mean v": v.mean(0, keepdim=True).expand_as(v),
        "random direction": rnd,
    }
    return [
        MethodResult(
            f"control/{name}",
            {"alpha": a, "of": "head-guided"},
            predictions(cached.score(ctx.de, ctx.ro, d, [a])[0]),
        )
        for name, d in dirs.items()
    ]


def _k_sweep(ctx: MethodContext) -> list[dict[str, Any]]:
    """Table 3 / Table 4: K sweep, specialists vs matched random heads (mean +- sd over seeds)."""
    base = ctx.acc_full(predictions(ctx.de["logits_a"]))
    sweep = []
    for k in ctx.cfg.k_sweep:
        rs = ctx.layer_steer("head-guided", select(ctx.disc.r, k, ctx.cfg.ranking), {})
        gains_rand = [
            ctx.acc_full(ctx.layer_steer("random-layer", random_set(ctx, k, s), {}).pred) - base
            for s in range(ctx.cfg.seeds)
        ]
        sweep.append(
            {
                "K": k,
                "specialist_gain": ctx.acc_full(rs.pred) - base,
                "specialist_alpha": rs.params["alpha"],
                "random_gain_mean": float(np.mean(gains_rand)),
                "random_gain_sd": float(np.std(gains_rand, ddof=1)) if len(gains_rand) > 1 else 0.0,
                "random_gains": gains_rand,
                "layer_set": rs.params["layer_set"],
                "n_layers": len(rs.params["layer_set"]),
            }
        )
    return sweep


def random_layer(ctx: MethodContext) -> list[MethodResult]:
    """Every seed's alpha is chosen on calibration; the row holds the median seed's predictions and
    `ctx.extra["random_layer_seeds"]` every seed's (the matched control of the reports' McNemar tests)."""
    runs = [ctx.layer_steer("random-layer", random_set(ctx, ctx.cfg.k, s), {}) for s in range(ctx.cfg.seeds)]
    accs = [ctx.acc_full(r.pred) for r in runs]
    med = runs[int(np.argsort(accs)[len(accs) // 2])]
    med.params |= {
        "seeds": ctx.cfg.seeds,
        "acc_mean": float(np.mean(accs)),
        "acc_sd": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
        "note": "predictions of the median seed",
    }
    ctx.extra["random_layer_seeds"] = [
        {"seed": RANDOM_SEED_BASE + s, "alpha": r.params["alpha"], "accuracy": a, "pred": r.pred}
        for s, (r, a) in enumerate(zip(runs, accs, strict=True))
    ]
    return [med]


def single_layer(ctx: MethodContext) -> list[MethodResult]:
    if ctx.n_layers == 0:
        raise SteerAudioError("the model has no decoder layers to steer")
    curves = [
        ctx.cached_curves(cached.single_layer_direction(ctx.dc, l), cached.single_layer_direction(ctx.de, l))
        for l in range(ctx.n_layers)  # noqa: E741
    ]
    layer, i = pick_grid([list(c.mean(1)) for c, _ in curves], ctx.alphas)
    a = ctx.alphas[i]
    ro = ctx.ro

    def predict(d: CaptureData) -> np.ndarray:
        return predictions(cached.score(d, ro, cached.single_layer_direction(d, layer), [a])[0])

    cal, ev = curves[layer]
    ctx.extra["single_layer_calib_best_by_layer"] = {
        str(l): float(c.mean(1).max())
        for l, (c, _) in enumerate(curves)  # noqa: E741
    }
    return [
        MethodResult(
            "single-layer", {"layer": layer, "alpha": a}, predict(ctx.de), list(ctx.alphas), cal, ev, predict
        )
    ]
