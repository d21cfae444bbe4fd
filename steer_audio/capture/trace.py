"""The capture trace: one nnsight trace per batch reads, at the final prompt position t of every row,
the residual h_t^l after every decoder layer, the per-head attention outputs z_t^{l,h} (the input of
o_proj), the audio attention mass a_{l,h} (from the post-RoPE query row of t only; no S x S matrix), and
the candidate-token logits. The same code runs locally or on an NDIF server (`remote=`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nnsight
import torch

from ..models.arch import ArchSpec, Geometry, resolve


class SourceOps:
    """One `.source` operation per attention module, resolved when indexed, i.e. inside the trace, on the model
    that runs it. Resolved before the trace, `.source` would instrument only this process's copy of the module:
    on an NDIF server (or after nnsight's remote="local" round trip) the model never reaches that hook and the
    trace fails with OutOfOrderError."""

    def __init__(self, attn: list[Any], op: str, model_name: str) -> None:
        self.attn, self.op, self.model_name = list(attn), op, model_name

    def __getitem__(self, i: int) -> Any:
        return resolve(self.attn[i].source, self.op, self.model_name)

    def __len__(self) -> int:
        return len(self.attn)


@dataclass
class Envoys:
    """nnsight envoys of one wrapped model, resolved once from the architecture table."""

    layers: list[Any]
    o_proj: list[Any]
    rope: SourceOps
    attn_modules: list[Any]
    final_norm: Any
    lm_head: Any


def envoys(lm: Any, arch: ArchSpec, geom: Geometry, name: str) -> Envoys:
    layer_list = resolve(lm, arch.decoder_layers, name)
    layers = [layer_list[i] for i in range(geom.n_layers)]
    attn = [resolve(layer, arch.attn, name) for layer in layers]
    return Envoys(
        layers=layers,
        o_proj=[resolve(layer, arch.o_proj, name) for layer in layers],
        rope=SourceOps(attn, arch.rope_op, name),
        attn_modules=[a._module for a in attn],
        final_norm=resolve(lm, arch.final_norm, name),
        lm_head=resolve(lm, arch.lm_head, name),
    )


def last_row_audio_mass(
    q: torch.Tensor,
    k: torch.Tensor,
    key_mask: torch.Tensor,
    audio_mask: torch.Tensor,
    scaling: float,
    softcap: float | None = None,
) -> torch.Tensor:
    """a_{l,h} = sum_{j in A} softmax_j(q_t . k_j * scaling) for the last query row only.

    q: [N, H, S, d] post-RoPE queries, k: [N, KV, S, d] post-RoPE keys (GQA expanded here),
    key_mask: [N, S] bool (keys the last row may see), audio_mask: [N, S] bool. Returns [N, H] float32.
    """
    n_heads, n_kv = q.shape[1], k.shape[1]
    qt = q[:, :, -1, :].float()
    if n_kv != n_heads:
        k = k.repeat_interleave(n_heads // n_kv, dim=1)
    # an elementwise product and a sum, not a matmul: an NDIF server runs every request under
    # torch.autocast(bfloat16), which would run a float32 einsum in bf16 (on the H200 the remote masses then
    # differed from the local ones by ~0.005 while every bf16 tensor was identical); mul and sum keep float32.
    # float32 qt times bf16 k promotes exactly, so no float32 copy of the keys is made first
    scores = (qt[:, :, None, :] * k).sum(-1) * scaling
    if softcap:
        scores = torch.tanh(scores / softcap) * softcap
    # the masks are built where the inputs are (the client, for a remote trace): move them to the scores'
    # device here, inside the trace (a CUDA server got CPU masks: "expected self and mask on the same device")
    scores = scores.masked_fill(~key_mask.to(scores.device)[:, None, :], float("-inf"))
    probs = scores.softmax(-1)
    return (probs * audio_mask.to(scores.device)[:, None, :].float()).sum(-1)


def last_position(x: torch.Tensor) -> torch.Tensor:
    """x[:, -1:] as a contiguous [N, 1, d] tensor: what the lm_head gets when only the last position is scored.
    The bare slice is a strided view that `F.linear` cannot fold into one matrix product, so it multiplies
    every row by its own broadcast copy of the weight (a batched product reading the 156k x 4096 lm_head once
    per row: 9.7 of 271 ms of GPU time per H200 capture batch); contiguous, it is one [N, d] x [d, V] product."""
    return x[:, -1:].contiguous()


def key_masks(attention_mask: torch.Tensor, windows: tuple[int | None, ...]) -> list[torch.Tensor]:
    """Per layer: which keys the last position attends to (padding removed; sliding windows applied)."""
    full = attention_mask.bool()
    s = full.shape[1]
    out = []
    for w in windows:
        if w is None or w >= s:
            out.append(full)
        else:
            pos = torch.arange(s, device=full.device)
            out.append(full & (pos > (s - 1) - w)[None, :])
    return out


def capture_trace(
    lm: Any,
    ev: Envoys,
    geom: Geometry,
    model_inputs: dict[str, torch.Tensor],
    audio_mask: torch.Tensor,
    cand: torch.Tensor,
    remote: bool | str = False,
    readout_ids: torch.Tensor | None = None,
    past_keys: list[torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Run one batch; returns per-row tensors: resid [N,L,d], z [N,L,H,dh], mass [N,L,H], cand_logits [N,O].

    With `readout_ids`, also the final norm's weight and the lm_head rows of those tokens (what cached
    steering needs to score options without the model; read inside the trace so it works remotely).
    With `past_keys` (capture/prefix.py: the model inputs are suffixes run against a cache of shared
    prefixes), layer l's keys are `past_keys[l]` followed by the suffix's own; masks cover both."""
    kmasks = key_masks(model_inputs["attention_mask"], geom.windows)
    scalings = [float(m.scaling) for m in ev.attn_modules]
    softcaps = [getattr(m.config, "attn_logit_softcapping", None) for m in ev.attn_modules]
    n, h, dh = cand.shape[0], geom.n_heads, geom.head_dim
    with lm.trace(**model_inputs, use_cache=False, remote=remote):
        resid, zs, mass = [], [], []
        for i in range(geom.n_layers):
            q, k = ev.rope[i].output
            if past_keys is not None:
                k = torch.cat([past_keys[i], k], 2)
            mass.append(last_row_audio_mass(q, k, kmasks[i], audio_mask, scalings[i], softcaps[i]))
            zs.append(ev.o_proj[i].input[:, -1].reshape(n, h, dh))
            resid.append(ev.layers[i].output[:, -1])
        # lm_head needs only position t: skip the full-vocabulary logits of every other position
        ev.final_norm.output = last_position(ev.final_norm.output)
        logits = ev.lm_head.output[:, -1]
        out = {
            "resid": torch.stack(resid, 1),
            "z": torch.stack(zs, 1),
            "mass": torch.stack(mass, 1),
            "cand_logits": logits.float().gather(1, cand.to(logits.device)),
        }
        if readout_ids is not None:
            out["readout_w"] = ev.lm_head.weight[readout_ids.to(logits.device)]
            out["readout_norm"] = ev.final_norm.weight
        out = nnsight.save(out)
    return out
