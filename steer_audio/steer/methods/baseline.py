"""`baseline`: no intervention (the audio pass's own candidate logits)."""

from __future__ import annotations

import numpy as np

from ...capture.cache import CaptureData
from ...discover.heads import predictions
from .base import MethodContext, MethodResult


def _predict(d: CaptureData) -> np.ndarray:
    return predictions(d["logits_a"])


def run(ctx: MethodContext) -> list[MethodResult]:
    return [MethodResult("baseline", {}, _predict(ctx.de), predict=_predict)]
