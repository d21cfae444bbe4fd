"""Forward-pass methods' batching: examples -> audio-only model inputs -> `run(envoys, batch, cached rows)`
-> candidate logits [A, N, O], and the alpha choice on calibration shared by every forward method.

Every forward-pass method that registers in `SHARED` (head-level, avs) is scored in one loop over a split's
batches: one unsteered prefix pass per batch (`ForwardBatch.prefix`) serves every method, head set and
alpha; the other methods' logits wait in `ctx.memo` until they run. The next batch's inputs (audio, tokens,
log-mel features, on the model's device) are prepared in a worker thread while the current one runs."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from ...capture.cache import CaptureData
from ...capture.inputs import Batch, encode
from ...capture.trace import envoys
from ...data.audio import import_decoders, load_audio
from ...data.mmau import Example
from ...discover.heads import predictions
from ...evaluate.protocol import pick
from .. import forward
from .base import MethodContext, MethodResult


class ForwardBatch:
    """One batch of audio-only model inputs. `prefix()` runs the unsteered prefix pass (up to t-1) once, for
    every method that asks; `reuse` says whether methods should (local model and `reuse_prefix`), `batched`
    whether one decode step may hold every configuration (steer/forward.py `shared_step_ok`)."""

    def __init__(self, lm: Any, ev: Any, inputs: dict[str, torch.Tensor], reuse: bool) -> None:
        self.lm, self.ev, self.inputs, self.reuse = lm, ev, inputs, reuse
        self.batched = reuse and forward.shared_step_ok(ev)
        self._pre: forward.Prefix | None = None

    def prefix(self) -> forward.Prefix:
        if self._pre is None:
            self._pre = forward.prefix_pass(self.lm, self.ev, self.inputs)
        return self._pre


#: run(envoys, one batch, that batch's cached rows) -> logits [A, n, O] (on any device)
BatchRun = Callable[[Any, ForwardBatch, CaptureData], torch.Tensor]

#: forward-pass methods scored in one shared batch loop: name -> (ctx, alphas) -> BatchRun
SHARED: dict[str, Callable[[MethodContext, list[float]], BatchRun]] = {}


def _prepare(m: Any, chunk: list[Example]) -> Batch:
    wavs = [load_audio(e.audio_path, e.audio_array, max_seconds=m.audio_window_s) for e in chunk]
    fd = None if m.remote else m.device
    return encode(m.processor, chunk, wavs, None, m.prompt, m.geom.audio_token_id, fd)


def forward_curves(
    ctx: MethodContext, exs: list[Example], data: CaptureData, runs: dict[str, BatchRun]
) -> dict[str, torch.Tensor]:
    """Batches of audio-only inputs through every run -> logits [A, N, O] per run (on the CPU)."""
    m = ctx.model
    ev = envoys(m.lm, m.arch, m.geom, m.name)
    bs = ctx.cfg.batch_size
    reuse = bool(ctx.cfg.reuse_prefix and not m.remote)
    chunks = [exs[s : s + bs] for s in range(0, len(exs), bs)]
    outs: dict[str, list[torch.Tensor]] = {k: [] for k in runs}
    import_decoders()  # before the loader thread starts (data/audio.py says why)
    with ThreadPoolExecutor(max_workers=1) as pool:
        nxt = pool.submit(_prepare, m, chunks[0]) if chunks else None
        for k, chunk in enumerate(chunks):
            b = nxt.result()  # type: ignore[union-attr]
            if k + 1 < len(chunks):
                nxt = pool.submit(_prepare, m, chunks[k + 1])
            sub = data.subset([e.id for e in chunk])
            fb = ForwardBatch(m.lm, ev, m.model_inputs(b.model_inputs), reuse)
            for name, run in runs.items():
                outs[name].append(run(ev, fb, sub)[:, :, : sub["cand"].shape[1]])
    # results stay on the device until the split is done: no host sync per batch
    return {k: torch.cat([x.to(v[0].device) for x in v], 1).cpu() for k, v in outs.items()}


def forward_curve(
    ctx: MethodContext,
    exs: list[Example],
    data: CaptureData,
    run: BatchRun,
    name: str | None = None,
    alphas: list[float] | None = None,
) -> torch.Tensor:
    """Batches of audio-only inputs through `run` -> logits [A, N, O].

    With the method's `name` (a `SHARED` method) and its `alphas`, every other requested `SHARED` method is
    scored in the same loop over these examples at the same alphas, and kept in `ctx.memo` for its own call."""
    if name is None or alphas is None:
        return forward_curves(ctx, exs, data, {"run": run})["run"]
    key = (name, tuple(e.id for e in exs), tuple(alphas))
    if key in ctx.memo:
        return ctx.memo.pop(key)  # type: ignore[no-any-return]
    from .registry import REGISTRY

    for n in ctx.cfg.methods:  # a family module registers in SHARED when imported (registry: on first use)
        if n in REGISTRY and REGISTRY[n].kind == "forward":
            REGISTRY[n].run  # noqa: B018 (imports the module)
    others = {n: SHARED[n](ctx, alphas) for n in SHARED if n != name and n in ctx.cfg.methods}
    got = forward_curves(ctx, exs, data, {name: run, **others})
    for n in others:
        ctx.memo[(n, key[1], key[2])] = got[n]
    return got[name]


def curve_result(
    ctx: MethodContext, name: str, params: dict[str, Any], cal_l: torch.Tensor, ev_l: torch.Tensor
) -> tuple[MethodResult, int]:
    """A method scored by forward passes, logits [A, N, O] per split: alpha chosen on calibration.
    Returns the result and the chosen alpha's index. alpha = 0 is the unsteered model: its rows are the
    audio pass's own logits (as in `cached.score`), not a forward pass that differs from it by kernel
    rounding in bfloat16."""
    zero = [i for i, a in enumerate(ctx.alphas) if a == 0]
    if zero:
        cal_l, ev_l = cal_l.clone(), ev_l.clone()
        cal_l[zero], ev_l[zero] = ctx.dc["logits_a"].float(), ctx.de["logits_a"].float()
    cal, ev = ctx.curve(cal_l, ctx.cal_ex), ctx.curve(ev_l, ctx.ev_ex)
    i = pick(list(cal.mean(1)), ctx.alphas)
    res = MethodResult(
        name, {"alpha": ctx.alphas[i], **params}, predictions(ev_l[i]), list(ctx.alphas), cal, ev
    )
    return res, i
