"""Forward-pass methods' batching: examples -> audio-only model inputs -> `run(envoys, inputs, cached rows)`
-> candidate logits [A, N, O], and the alpha choice on calibration shared by every forward method."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ...capture.cache import CaptureData
from ...capture.inputs import encode
from ...capture.trace import envoys
from ...data.audio import load_audio
from ...data.mmau import Example
from ...discover.heads import predictions
from ...evaluate.protocol import pick
from .base import MethodContext, MethodResult

#: run(envoys, model inputs of one batch, that batch's cached rows) -> logits [A, n, O]
BatchRun = Callable[[Any, dict[str, torch.Tensor], CaptureData], torch.Tensor]


def forward_curve(ctx: MethodContext, exs: list[Example], data: CaptureData, run: BatchRun) -> torch.Tensor:
    """Batches of audio-only inputs through `run` -> logits [A, N, O]."""
    m = ctx.model
    ev = envoys(m.lm, m.arch, m.geom, m.name)
    bs = ctx.cfg.batch_size
    outs = []
    for s in range(0, len(exs), bs):
        chunk = exs[s : s + bs]
        sub = data.subset([e.id for e in chunk])
        wavs = [load_audio(e.audio_path, e.audio_array, max_seconds=m.audio_window_s) for e in chunk]
        b = encode(m.processor, chunk, wavs, None, m.prompt, m.geom.audio_token_id)
        inputs = m.model_inputs(b.model_inputs)
        outs.append(run(ev, inputs, sub)[:, :, : sub["cand"].shape[1]])
    return torch.cat(outs, 1)


def curve_result(
    ctx: MethodContext, name: str, params: dict[str, Any], cal_l: torch.Tensor, ev_l: torch.Tensor
) -> tuple[MethodResult, int]:
    """A method scored by forward passes, logits [A, N, O] per split: alpha chosen on calibration.
    Returns the result and the chosen alpha's index."""
    cal, ev = ctx.curve(cal_l, ctx.cal_ex), ctx.curve(ev_l, ctx.ev_ex)
    i = pick(list(cal.mean(1)), ctx.alphas)
    res = MethodResult(
        name, {"alpha": ctx.alphas[i], **params}, predictions(ev_l[i]), list(ctx.alphas), cal, ev
    )
    return res, i
