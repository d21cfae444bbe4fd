"""`avs`: Adaptive Vector Steering (Lin, Lee & Lee 2025) as an evaluation method: every layer, scheduled,
norm-preserving (the intervention and what could not be verified about it: steer/avs.py)."""

from __future__ import annotations

from typing import Any

import torch

from ...capture.cache import CaptureData
from ...data.mmau import Example
from ...discover.heads import predictions
from .. import avs
from .base import MethodContext, MethodResult
from .batches import SHARED, BatchRun, ForwardBatch, curve_result, forward_curve


def _shared(ctx: MethodContext, alphas: list[float]) -> BatchRun:
    m = ctx.model
    schedule = avs.layer_schedule(m.geom.n_layers)

    def run(ev: Any, fb: ForwardBatch, sub: CaptureData) -> torch.Tensor:
        v = avs.avs_vectors(sub["resid_a"], sub["resid_n"])
        if fb.batched:  # every alpha in one decode step from the batch's shared prefix
            return avs.avs_step(m.lm, ev, fb.prefix(), sub["cand"], v, alphas, schedule)
        return avs.avs_sweep(
            m.lm, ev, fb.inputs, sub["cand"], v, alphas, schedule, m.remote, reuse_prefix=False
        )

    return run


SHARED["avs"] = _shared


def _logits(
    ctx: MethodContext, exs: list[Example], data: CaptureData, alphas: list[float], share: bool = True
) -> torch.Tensor:
    """Logits [A, N, O]; `share`: in the batch loop of every SHARED method (methods/batches.py)."""
    return forward_curve(ctx, exs, data, _shared(ctx, alphas), "avs" if share else None, alphas)


def run(ctx: MethodContext) -> list[MethodResult]:
    m = ctx.need_model("avs")
    schedule = avs.layer_schedule(m.geom.n_layers)
    res, i = curve_result(
        ctx,
        "avs",
        {"schedule": [round(float(x), 3) for x in schedule]},
        _logits(ctx, ctx.cal_ex, ctx.dc, ctx.alphas),
        _logits(ctx, ctx.ev_ex, ctx.de, ctx.alphas),
    )
    if ctx.dd is not None:
        res.diag_pred = predictions(_logits(ctx, ctx.diag_ex, ctx.dd, [ctx.alphas[i]], share=False)[0])
    return [res]
