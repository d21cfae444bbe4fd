"""`gated`: head-guided steering applied only where the listening score says the model is not listening.

s(x) (Eq. 3, the specialists' r-weighted audio mass) is high when the model attends to the audio. The
method steers an item by alpha * v(x) (head-guided, Eq. 5) only when s(x) < tau, and leaves the others
unsteered. tau is a quantile of the calibration scores, q in `GATE_QUANTILES` (q = 1 steers every item,
i.e. plain head-guided); (q, alpha) are chosen on calibration by the protocol's rule (ties: smaller
|alpha|, then lower q). The same tau (a score value) is applied to the evaluation items.

Its control, `gated-random`, gates by the listening score of K random heads (one seeded draw),
chosen the same way, with the same specialist steering direction: if the gain comes from gating on the
specialists' score, the random-head gate should not match it."""

from __future__ import annotations

import numpy as np

from ...capture.cache import CaptureData
from ...discover.heads import HeadSet, listening_score, predictions, random_heads
from ...evaluate.protocol import pick_grid
from .. import cached
from .base import MethodContext, MethodResult

GATE_QUANTILES = (0.25, 0.5, 0.75, 1.0)
#: the random gate heads are drawn with this offset from the evaluation seed
GATE_SEED_OFFSET = 11


def _score(d: CaptureData, hs: HeadSet, normalise: bool) -> np.ndarray:
    return listening_score(d["mass_a"].numpy(), hs, normalise)


def gated_result(ctx: MethodContext, name: str, gate_heads: HeadSet) -> MethodResult:
    steer_heads, ro, norm = ctx.main_heads, ctx.ro, ctx.cfg.normalise
    s_cal = _score(ctx.dc, gate_heads, norm)
    taus = [float(np.quantile(s_cal, q)) if q < 1 else float("inf") for q in GATE_QUANTILES]
    steer_cal, steer_ev = ctx.cached_curves(
        cached.head_guided_direction(ctx.dc, steer_heads), cached.head_guided_direction(ctx.de, steer_heads)
    )
    base_cal = ctx.correct(predictions(ctx.dc["logits_a"]), ctx.cal_ex)
    base_ev = ctx.correct(predictions(ctx.de["logits_a"]), ctx.ev_ex)
    gate_cal = [s_cal < t for t in taus]
    cal_grid = [np.where(g[None, :], steer_cal, base_cal[None, :]) for g in gate_cal]
    j, i = pick_grid([list(c.mean(1)) for c in cal_grid], ctx.alphas)
    tau, a = taus[j], ctx.alphas[i]

    def predict(d: CaptureData) -> np.ndarray:
        steered = predictions(cached.score(d, ro, cached.head_guided_direction(d, steer_heads), [a])[0])
        return np.where(_score(d, gate_heads, norm) < tau, steered, predictions(d["logits_a"]))

    gate_ev = _score(ctx.de, gate_heads, norm) < tau
    ev = np.where(gate_ev[None, :], steer_ev, base_ev[None, :])
    return MethodResult(
        name,
        {
            "alpha": a,
            "gate_quantile": GATE_QUANTILES[j],
            "gate_threshold": tau,
            "steered_fraction_eval": float(gate_ev.mean()),
            "gate_heads": gate_heads.names(),
        },
        predict(ctx.de),
        list(ctx.alphas),
        cal_grid[j],
        ev,
        predict,
    )


def gated(ctx: MethodContext) -> list[MethodResult]:
    return [gated_result(ctx, "gated", ctx.disc.heads)]


def gated_control(ctx: MethodContext) -> list[MethodResult]:
    rh = random_heads(ctx.disc.r, ctx.disc.heads.k, np.random.default_rng(ctx.cfg.seed + GATE_SEED_OFFSET))
    return [gated_result(ctx, "gated-random", rh)]
