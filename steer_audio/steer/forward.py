"""Interventions that need the model: head-level steering (Eqs. 7-9) and the reference forward used to
verify cached scoring. Both use nnsight traces (locally or remotely).

Head-level steering adds alpha * sum_{h in S, layer l} W_O^l[:, h] dz^{l,h} to the residual after the
attention sublayer of each layer l in L_S, at position t. Since o_proj is linear, that equals adding
alpha * dz^{l,h} to head h's slice of o_proj's *input* at t, which is what the trace does. Only position t
changes, so the audio pass's prefix keys/values are computed once and reused: one decode step per alpha."""

from __future__ import annotations

from typing import Any

import torch

from ..capture.trace import Envoys


def head_delta(dz: torch.Tensor, heads: list[tuple[int, int]], n_layers: int) -> dict[int, torch.Tensor]:
    """Per layer l in L_S: [N, H*dh] with dz^{l,h} in the slices of the selected heads, zeros elsewhere."""
    n, _, n_heads, dh = dz.shape
    out: dict[int, torch.Tensor] = {}
    for layer, h in heads:
        if layer not in out:
            out[layer] = torch.zeros(n, n_heads * dh)
        out[layer][:, h * dh : (h + 1) * dh] = dz[:, layer, h].float()
    return out


def _gather(logits: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    valid = cand >= 0
    return (
        logits.float()
        .gather(1, cand.clamp(min=0).to(logits.device))
        .masked_fill(~valid.to(logits.device), float("-inf"))
    )


def forward_logits(
    lm: Any,
    ev: Envoys,
    inputs: dict[str, torch.Tensor],
    cand: torch.Tensor,
    attn_add: dict[int, torch.Tensor] | None = None,
    final_add: torch.Tensor | None = None,
    remote: bool | str = False,
) -> torch.Tensor:
    """A full forward with interventions at the last position: `attn_add[l]` is added to o_proj's input of
    layer l, `final_add` to the last decoder layer's output. Returns candidate logits [N, O] (float32)."""
    attn_add = attn_add or {}
    last = len(ev.layers) - 1
    with lm.trace(**inputs, use_cache=False, remote=remote):
        for layer in sorted(attn_add):
            x = ev.o_proj[layer].input
            x[:, -1] += attn_add[layer].to(x.device, x.dtype)
        if final_add is not None:
            y = ev.layers[last].output
            y[:, -1] += final_add.to(y.device, y.dtype)
        ev.final_norm.output = ev.final_norm.output[:, -1:]
        logits = ev.lm_head.output[:, -1].save()
    return _gather(logits.cpu(), cand)


def head_level_logits(
    lm: Any,
    ev: Envoys,
    inputs: dict[str, torch.Tensor],
    cand: torch.Tensor,
    deltas: dict[int, torch.Tensor] | list[dict[int, torch.Tensor]],
    alphas: list[float],
    reuse_prefix: bool = True,
    remote: bool | str = False,
) -> torch.Tensor:
    """Candidate logits [A, N, O] under head-level steering for every alpha; for a list of S head sets,
    [S * A, N, O] (set-major), all sets sharing one prefix pass (the unsteered prompt up to t)."""
    sets = deltas if isinstance(deltas, list) else [deltas]
    if not reuse_prefix or remote:
        return torch.stack(
            [forward_logits(lm, ev, inputs, cand, _scaled(d, a), remote=remote) for d in sets for a in alphas]
        )
    prefix = {
        k: (v[:, :-1] if k in ("input_ids", "inputs_embeds", "attention_mask", "position_ids") else v)
        for k, v in inputs.items()
    }
    with lm.trace(**prefix, use_cache=True):
        kv = lm.output.cache.save()
    step = {
        "input_ids": inputs["input_ids"][:, -1:],
        "attention_mask": inputs["attention_mask"],
        "position_ids": inputs["position_ids"][:, -1:],
    }
    out = []
    for d in sets:
        for a in alphas:
            with lm.trace(**step, cache=kv, use_cache=True):
                for layer in sorted(d):
                    x = ev.o_proj[layer].input
                    x[:, -1] += (a * d[layer]).to(x.device, x.dtype)
                logits = ev.lm_head.output[:, -1].save()
            kv.crop(-1)  # drop the decoded position t again (transformers 5: negative = tokens to remove)
            out.append(_gather(logits.cpu(), cand))
    return torch.stack(out)


def _scaled(deltas: dict[int, torch.Tensor], a: float) -> dict[int, torch.Tensor]:
    return {k: a * v for k, v in deltas.items()}
