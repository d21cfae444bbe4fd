"""Contrasts of the two passes' logits (from the neighbouring literature), scored from the cache:
`aad` ((1 + alpha) logit(x) - alpha logit(x0)) and `contrastive-options` (log p(option | x) - alpha
log p(option | x0), over the options)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ...capture.cache import CaptureData
from ...discover.heads import predictions
from ...evaluate.protocol import pick
from .base import MethodContext, MethodResult

Contrast = Callable[[CaptureData, float], torch.Tensor]


def aad_logits(d: CaptureData, a: float) -> torch.Tensor:
    return (1 + a) * d["logits_a"] - a * d["logits_n"].masked_fill(torch.isinf(d["logits_n"]), 0.0)


def contrastive_logits(d: CaptureData, a: float) -> torch.Tensor:
    la, ln = d["logits_a"].log_softmax(-1), d["logits_n"].log_softmax(-1)
    return la - a * ln.masked_fill(torch.isinf(ln), 0.0)


def logit_method(ctx: MethodContext, name: str, f: Contrast) -> list[MethodResult]:
    """Contrasts of the two passes can tie exactly (identical passes): ties go to the audio-pass logits,
    never silently to option A (the first option is the answer in 39.5% of MMAU test-mini)."""
    al = ctx.alphas
    dc, de = ctx.dc, ctx.de
    cal = np.stack([ctx.correct(predictions(f(dc, a), dc["logits_a"]), ctx.cal_ex) for a in al])
    ev = np.stack([ctx.correct(predictions(f(de, a), de["logits_a"]), ctx.ev_ex) for a in al])
    a = al[pick(list(cal.mean(1)), al)]

    def predict(d: CaptureData) -> np.ndarray:
        return predictions(f(d, a), d["logits_a"])

    return [MethodResult(name, {"alpha": a}, predict(de), list(al), cal, ev, predict)]


def aad(ctx: MethodContext) -> list[MethodResult]:
    return logit_method(ctx, "aad", aad_logits)


def contrastive_options(ctx: MethodContext) -> list[MethodResult]:
    return logit_method(ctx, "contrastive-options", contrastive_logits)
