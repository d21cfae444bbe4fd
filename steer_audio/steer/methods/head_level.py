"""`head-level`: alpha * sum_h W_O[:, h] dz^{l,h} after attention (Eqs. 7-9), for the specialists and for
K random heads (the paper's Table 1 control). Forward passes: one prefix pass per batch serves every head
set and alpha (steer/forward.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...capture.cache import CaptureData
from ...data.mmau import Example
from ...discover.heads import HeadSet, predictions, random_heads
from .. import forward
from .base import MethodContext, MethodResult
from .batches import curve_result, forward_curve


def _logits(
    ctx: MethodContext, exs: list[Example], data: CaptureData, sets: list[HeadSet], alphas: list[float]
) -> torch.Tensor:
    """Logits [S * A, N, O] for S head sets (set-major)."""
    m = ctx.model

    def run(ev: Any, inputs: dict[str, torch.Tensor], sub: CaptureData) -> torch.Tensor:
        deltas = [forward.head_delta(sub["dz"], list(hs.heads), m.geom.n_layers) for hs in sets]
        return forward.head_level_logits(
            m.lm, ev, inputs, sub["cand"], deltas, alphas, ctx.cfg.reuse_prefix, m.remote
        )

    return forward_curve(ctx, exs, data, run)


def head_level(ctx: MethodContext) -> list[MethodResult]:
    ctx.need_model("head-level steering")
    sets = {
        "specialist": ctx.disc.heads,
        "random": random_heads(ctx.disc.r, ctx.cfg.k, np.random.default_rng(ctx.cfg.seed + 7)),
    }
    kinds = list(sets)
    n_a = len(ctx.alphas)
    cal_all = _logits(ctx, ctx.cal_ex, ctx.dc, [sets[k] for k in kinds], ctx.alphas)
    ev_all = _logits(ctx, ctx.ev_ex, ctx.de, [sets[k] for k in kinds], ctx.alphas)
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
