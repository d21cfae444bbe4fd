"""`head-level`: alpha * sum_h W_O[:, h] dz^{l,h} after attention (Eqs. 7-9), for the specialists and for
K random heads (the paper's Table 1 control). Forward passes: one prefix pass per batch serves every head
set and alpha, and avs too when both run (methods/batches.py); one decode step holds every (set, alpha)
(steer/forward.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...capture.cache import CaptureData
from ...data.mmau import Example
from ...discover.heads import HeadSet, predictions, random_heads
from .. import forward
from .base import MethodContext, MethodResult
from .batches import SHARED, BatchRun, ForwardBatch, curve_result, forward_curve


def _sets(ctx: MethodContext) -> dict[str, HeadSet]:
    """The specialists and the K random heads of the control (the same draw in every call)."""
    return {
        "specialist": ctx.disc.heads,
        "random": random_heads(ctx.disc.r, ctx.cfg.k, np.random.default_rng(ctx.cfg.seed + 7)),
    }


def _run(ctx: MethodContext, sets: list[HeadSet], alphas: list[float]) -> BatchRun:
    m = ctx.model

    def run(ev: Any, fb: ForwardBatch, sub: CaptureData) -> torch.Tensor:
        deltas = [forward.head_delta(sub["dz"], list(hs.heads), m.geom.n_layers) for hs in sets]
        if fb.batched:  # every (set, alpha) in one decode step from the batch's shared prefix
            return forward.head_level_step(m.lm, ev, fb.prefix(), sub["cand"], deltas, alphas)
        if fb.reuse:
            return forward.head_level_loop(m.lm, ev, fb.prefix(), sub["cand"], deltas, alphas)
        return forward.head_level_logits(m.lm, ev, fb.inputs, sub["cand"], deltas, alphas, False, m.remote)

    return run


def _shared(ctx: MethodContext, alphas: list[float]) -> BatchRun:
    return _run(ctx, list(_sets(ctx).values()), alphas)


SHARED["head-level"] = _shared


def _logits(
    ctx: MethodContext, exs: list[Example], data: CaptureData, sets: list[HeadSet], alphas: list[float]
) -> torch.Tensor:
    """Logits [S * A, N, O] for S head sets (set-major)."""
    return forward_curve(ctx, exs, data, _run(ctx, sets, alphas))


def head_level(ctx: MethodContext) -> list[MethodResult]:
    ctx.need_model("head-level steering")
    sets = _sets(ctx)
    kinds = list(sets)
    n_a = len(ctx.alphas)

    def both(exs: list[Example], data: CaptureData) -> torch.Tensor:
        run = _shared(ctx, ctx.alphas)
        return forward_curve(ctx, exs, data, run, "head-level", ctx.alphas)

    cal_all, ev_all = both(ctx.cal_ex, ctx.dc), both(ctx.ev_ex, ctx.de)
    out = []
    for j, kind in enumerate(kinds):
        heads = sets[kind]
        res, i = curve_result(
            ctx,
            f"head-level/{kind}",
            {"K": heads.k, "heads": heads.names()},
            cal_all[j * n_a : (j + 1) * n_a],
            ev_all[j * n_a : (j + 1) * n_a],
        )
        if ctx.dd is not None:
            res.diag_pred = predictions(_logits(ctx, ctx.diag_ex, ctx.dd, [heads], [ctx.alphas[i]])[0])
        out.append(res)
    return out
