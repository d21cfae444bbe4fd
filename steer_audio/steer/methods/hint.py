"""`hint-projected`: head-guided steering with v's component along a hint direction removed.

Why: with a silence negative, v(x) = h(x) - h(x0) also carries an "anti-hint" component, since the
negative pass follows the text's hint when it hears nothing; pushing along v then pulls consistent items
(where the hint is right) away from the answer.

The hint direction is defined from calibration data only: for every calibration base item whose
`misleading` twin and `neutral` twin (`twin_of`) are both in the calibration split, the difference of
their audio passes' residuals at t, combined over layers like v (the specialists' layer weights w_l):
u = mean over those pairs of sum_l w_l (h^l(x_misleading) - h^l(x_neutral)); the two rows share the clip
and differ only by the hint sentence. Every item is then steered by v'(x) = v(x) - (v(x) . u_hat) u_hat,
alpha chosen on calibration.

Its control, `hint-projected-random`, removes the component along a random unit direction (seeded)
instead: if the gain comes from removing the hint component, any projection should not match it."""

from __future__ import annotations

import torch

from ...capture.cache import CaptureData
from ...discover.heads import HeadSet
from ...errors import SteerAudioError
from .. import cached
from .base import MethodContext, MethodResult

HINTED, UNHINTED = "misleading", "neutral"


def hint_direction(ctx: MethodContext, hs: HeadSet) -> torch.Tensor:
    """u [d] (unnormalised) from the calibration split's misleading / neutral twin pairs."""
    ids = {e.id for e in ctx.cal_ex}
    pairs = [
        (e.id, str(e.extra["twin_of"]))
        for e in ctx.cal_ex
        if e.extra.get("condition") == HINTED and str(e.extra.get("twin_of")) in ids
    ]
    pairs = [(m, n) for m, n in pairs if m != n]
    if not pairs:
        raise SteerAudioError(
            "hint-projected needs misleading / neutral twins (listen-bench `condition` and `twin_of`) in "
            "the calibration split; this data has none: drop the method"
        )
    mis = ctx.dc.subset([m for m, _ in pairs])
    neu = ctx.dc.subset([n for _, n in pairs])
    diff = mis["resid_a"].float() - neu["resid_a"].float()  # [P, L, d]
    u = torch.zeros(diff.shape[2])
    for layer, w in hs.layer_weights().items():
        u += w * diff[:, layer].mean(0)
    return u


def projected(v: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """v - (v . u_hat) u_hat per row; v: [N, d], u: [d]."""
    uh = u / u.norm().clamp_min(1e-12)
    return v - (v @ uh)[:, None] * uh[None, :]


def _result(ctx: MethodContext, name: str, u: torch.Tensor, what: str) -> MethodResult:
    hs = ctx.main_heads

    def direction(d: CaptureData) -> torch.Tensor:
        return projected(cached.head_guided_direction(d, hs), u)

    v_ev = cached.head_guided_direction(ctx.de, hs)
    uh = u / u.norm().clamp_min(1e-12)
    cos = (v_ev @ uh) / v_ev.norm(dim=-1).clamp_min(1e-12)
    res = ctx.direction_result(name, direction, {"K": hs.k, "removed": what})
    res.params["mean_cos_v_u_eval"] = float(cos.mean())
    return res


def hint_projected(ctx: MethodContext) -> list[MethodResult]:
    u = hint_direction(ctx, ctx.main_heads)
    return [_result(ctx, "hint-projected", u, "calibration hint direction (misleading - neutral twins)")]


def hint_projected_random(ctx: MethodContext) -> list[MethodResult]:
    g = torch.Generator().manual_seed(ctx.cfg.seed + 13)
    u = torch.randn(int(ctx.dc["resid_a"].shape[2]), generator=g)
    return [_result(ctx, "hint-projected-random", u, "a random unit direction (seeded)")]
