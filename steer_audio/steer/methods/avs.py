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
from .batches import curve_result, forward_curve


def _logits(ctx: MethodContext, exs: list[Example], data: CaptureData, alphas: list[float]) -> torch.Tensor:
    m = ctx.model
    schedule = avs.layer_schedule(m.geom.n_layers)

    def run(ev: Any, inputs: dict[str, torch.Tensor], sub: CaptureData) -> torch.Tensor:
        v = avs.avs_vectors(sub["resid_a"], sub["resid_n"])
        return avs.avs_sweep(m.lm, ev, inputs, sub["cand"], v, alphas, schedule, m.remote)

    return forward_curve(ctx, exs, data, run)


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
        res.diag_pred = predictions(_logits(ctx, ctx.diag_ex, ctx.dd, [ctx.alphas[i]])[0])
    return [res]
