"""`avs`: Adaptive Vector Steering (Lin, Lee & Lee, arXiv 2510.12851) as a baseline method.

Per example x, the steering vector of layer l is the audio-minus-negative residual at the final prompt
position t, v_l(x) = h_t^l(x) - h_t^l(x0) (the cache's `resid_a - resid_n`). At every decoder layer l, in
execution order, the residual at t becomes

    h' = h + alpha * s_l * v_l(x),     then     h'' = h' * ||h|| / ||h'||

(re-normalised to the norm the residual had before the injection), and the next layer reads h''. The
layer schedule s_l is `inside` for layers in a band and `outside` elsewhere (default: the middle third of
the layers at 1.0, the rest at 0.25). Only position t changes, and nothing before t attends to it, so the
unsteered prefix up to t-1 is computed once per batch and every alpha is one copy of position t in a single
batched decode step (`avs_step`, the mechanism of steer/forward.py); `avs_logits` is the full forward of one
alpha (the reference, and what a remote run sends).

What could not be verified here (the paper's text was not readable in this environment; only its abstract
and third-party summaries were): the exact schedule. Summaries say the method weights layers by a
layer-wise influence analysis and focuses on *later* layers; the band/shape here (a step function,
middle third by default) is this project's parameterisation, not the paper's numbers; pass
`band=(2/3, 1.0)` for a late-layer emphasis. Also unverified: whether the paper re-normalises per layer
(done here, following VISTA, which AVS cites as its inspiration), whether it steers positions other than
the last one (during generation it would steer every new token; scoring one next token needs only t), and
how it picks alpha (here: on a calibration split, like every method in this harness).

One public implementation of "adaptive VSV layers" for audio-language models (found by code search; its
provenance could not be confirmed, so nothing here is taken from it) differs in two ways worth knowing:
its per-layer strength is a depth ramp for a 32-layer decoder (about 0.3x a base value in layers 0-3, 1x in
the middle, rising to about 1.5x in layers 25-31) with the re-normalised norm scaled by 1.05 in layers 24-27
and 0.97 in 30-31, and it adds v_l at *every* token position of the block output, not only at t. With this
module's step schedule, `band=(2/3, 1.0)` approximates the late emphasis; steering every position is not
offered (it changes the keys and values that t attends to, so it is a different method).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..capture.trace import Envoys, last_position
from ..errors import SteerAudioError
from . import forward
from .forward import Prefix, gather_candidates

#: default band: the middle third of the decoder layers, as fractions of depth [start, stop)
DEFAULT_BAND = (1 / 3, 2 / 3)


def avs_vectors(resid_a: torch.Tensor, resid_n: torch.Tensor) -> torch.Tensor:
    """v_l(x) = h_t^l(x) - h_t^l(x0) for every layer: [N, L, d] float32 (from the capture cache)."""
    if resid_a.shape != resid_n.shape:
        raise SteerAudioError(
            f"audio and negative residuals differ in shape: {tuple(resid_a.shape)} vs {tuple(resid_n.shape)}"
        )
    return resid_a.float() - resid_n.float()


def layer_schedule(
    n_layers: int,
    band: tuple[float, float] = DEFAULT_BAND,
    inside: float = 1.0,
    outside: float = 0.25,
) -> torch.Tensor:
    """s_l for l = 0..L-1 [L]: `inside` for round(band[0]*L) <= l < round(band[1]*L), `outside` elsewhere."""
    lo, hi = band
    if not (0.0 <= lo < hi <= 1.0):
        raise SteerAudioError(
            f"AVS band must satisfy 0 <= start < stop <= 1 (fractions of depth), got {band}"
        )
    if not (math.isfinite(inside) and math.isfinite(outside)):
        raise SteerAudioError(
            f"AVS schedule strengths must be finite, got inside={inside}, outside={outside}"
        )
    start, stop = round(lo * n_layers), round(hi * n_layers)
    s = torch.full((n_layers,), float(outside))
    s[start:stop] = float(inside)
    return s


def steer_residual(h: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    """(h + add) rescaled to ||h|| per row, in float32; returned in h's dtype. h, add: [N, d]."""
    hf = h.float()
    hs = hf + add.float()
    return (hs * (hf.norm(dim=-1, keepdim=True) / hs.norm(dim=-1, keepdim=True))).to(h.dtype)


def avs_logits(
    lm: Any,
    ev: Envoys,
    inputs: dict[str, torch.Tensor],
    cand: torch.Tensor,
    v: torch.Tensor,
    alpha: float,
    schedule: torch.Tensor,
    remote: bool | str = False,
) -> torch.Tensor:
    """One forward of the audio rows with AVS at the last position of every layer; candidate logits [N, O].

    inputs: the audio pass's model inputs (N rows, left-padded); cand: [N, O] (-1 = no option);
    v: [N, L, d] from `avs_vectors`; schedule: [L] from `layer_schedule`."""
    n_layers = len(ev.layers)
    _check(ev, inputs["input_ids"].shape[0], v, schedule)
    coef = [float(alpha) * float(s) for s in schedule.tolist()]
    with lm.trace(**inputs, use_cache=False, remote=remote):
        for layer in range(n_layers):
            y = ev.layers[layer].output
            add = coef[layer] * v[:, layer].to(y.device)
            y[:, -1] = steer_residual(y[:, -1], add)
        ev.final_norm.output = last_position(ev.final_norm.output)
        logits = ev.lm_head.output[:, -1].save()
    return gather_candidates(logits.cpu(), cand)


def _check(ev: Envoys, rows: int, v: torch.Tensor, schedule: torch.Tensor) -> None:
    n_layers = len(ev.layers)
    if v.ndim != 3 or v.shape[1] != n_layers or schedule.shape != (n_layers,):
        raise SteerAudioError(
            f"AVS needs v [N, {n_layers}, d] and a schedule of {n_layers} layers, "
            f"got v {tuple(v.shape)} and schedule {tuple(schedule.shape)}"
        )
    if v.shape[0] != rows:
        raise SteerAudioError(f"AVS got {v.shape[0]} vectors for {rows} rows")


def avs_step(
    lm: Any,
    ev: Envoys,
    pre: Prefix,
    cand: torch.Tensor,
    v: torch.Tensor,
    alphas: list[float],
    schedule: torch.Tensor,
) -> torch.Tensor:
    """Candidate logits [A, N, O] of every alpha from the batch's prefix (steer/forward.py), in steps of at
    most forward.MAX_STEP_CONFIGS alphas: copy c of position t gets alpha_c * s_l * v_l(x) at every layer,
    norm-preserving, exactly as `avs_logits` steers t. Returned on the model's device."""
    _check(ev, pre.rows, v, schedule)
    dtype = forward.model_dtype(lm)
    out = []
    for s in range(0, len(alphas), forward.MAX_STEP_CONFIGS):
        chunk = alphas[s : s + forward.MAX_STEP_CONFIGS]
        step = forward.step_inputs(pre, len(chunk), dtype)
        dev = step["input_ids"].device
        # coef[c, l] = float32(alpha_c * s_l), the scalar `avs_logits` multiplies v_l by
        coef = torch.tensor([[float(a) * float(x) for x in schedule.tolist()] for a in chunk]).to(dev)
        vd = v.float().to(dev)
        with torch.no_grad(), lm.trace(**step, cache=pre.kv, use_cache=True):
            for layer in range(len(ev.layers)):
                y = ev.layers[layer].output
                add = coef[None, :, layer, None] * vd[:, None, layer]
                y[:, :] = steer_residual(y[:, :], add)
            got = forward.gather_configs(ev.lm_head.output, cand).save()
        pre.kv.crop(-len(chunk))
        out.append(got)
    return torch.cat(out)


def avs_sweep(
    lm: Any,
    ev: Envoys,
    inputs: dict[str, torch.Tensor],
    cand: torch.Tensor,
    v: torch.Tensor,
    alphas: list[float],
    schedule: torch.Tensor,
    remote: bool | str = False,
    reuse_prefix: bool = True,
) -> torch.Tensor:
    """Candidate logits [A, N, O] under AVS for every alpha: one prefix pass and one batched decode step
    (`avs_step`), or, remotely, without `reuse_prefix` or on sliding-window models, one forward each."""
    if reuse_prefix and not remote and forward.shared_step_ok(ev):
        _check(ev, inputs["input_ids"].shape[0], v, schedule)
        return avs_step(lm, ev, forward.prefix_pass(lm, ev, inputs), cand, v, alphas, schedule).cpu()
    return torch.stack([avs_logits(lm, ev, inputs, cand, v, a, schedule, remote) for a in alphas])
