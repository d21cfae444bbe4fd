"""Interventions that need the model: head-level steering (Eqs. 7-9) and the reference forward used to
verify cached scoring. Both use nnsight traces (locally or remotely).

Head-level steering adds alpha * sum_{h in S, layer l} W_O^l[:, h] dz^{l,h} to the residual after the
attention sublayer of each layer l in L_S, at position t. Since o_proj is linear, that equals adding
alpha * dz^{l,h} to head h's slice of o_proj's *input* at t, which is what the trace does. Only position t
changes, so the audio pass's prefix keys/values are computed once and reused.

Batched across configurations: every (head set, alpha) of a batch is one decode step. The step feeds each row
C copies of its last token, all at position t, with a 4D mask under which copy c sees the row's prefix and
itself only (`step_inputs`), so copy c computes exactly what a single decode step under configuration c
computes; one trace scores every configuration of the batch (C = sets x alphas). Models with sliding-window
attention keep one decode step per configuration (their per-layer masks are built by transformers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..capture.trace import Envoys, last_position


def head_delta(dz: torch.Tensor, heads: list[tuple[int, int]], n_layers: int) -> dict[int, torch.Tensor]:
    """Per layer l in L_S: [N, H*dh] with dz^{l,h} in the slices of the selected heads, zeros elsewhere."""
    n, _, n_heads, dh = dz.shape
    out: dict[int, torch.Tensor] = {}
    for layer, h in heads:
        if layer not in out:
            out[layer] = torch.zeros(n, n_heads * dh)
        out[layer][:, h * dh : (h + 1) * dh] = dz[:, layer, h].float()
    return out


def gather_candidates(logits: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """`logits` [n, vocab] at the candidate ids `cand` [n, c] -> [n, c] float; padding ids (< 0) -> -inf."""
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
        ev.final_norm.output = last_position(ev.final_norm.output)
        logits = ev.lm_head.output[:, -1].save()
    return gather_candidates(logits.cpu(), cand)


@dataclass
class Prefix:
    """The unsteered prompt up to t-1 of one batch (its KV cache) and the batch's full model inputs."""

    kv: Any
    inputs: dict[str, torch.Tensor]

    @property
    def rows(self) -> int:
        return int(self.inputs["input_ids"].shape[0])


#: inputs whose sequence axis the prefix pass cuts at t
SEQ_KEYS = ("input_ids", "inputs_embeds", "attention_mask", "position_ids")

#: most configurations per batched decode step (bounds the step's lm_head output: rows x C x vocabulary)
MAX_STEP_CONFIGS = 64


def prefix_pass(lm: Any, ev: Envoys, inputs: dict[str, torch.Tensor]) -> Prefix:
    """The prompt without its last position, once, with the KV cache kept (lm_head on one position only)."""
    prefix = {k: (v[:, :-1] if k in SEQ_KEYS else v) for k, v in inputs.items()}
    with torch.no_grad(), lm.trace(**prefix, use_cache=True):
        ev.final_norm.output = last_position(ev.final_norm.output)
        kv = lm.output.cache.save()
    return Prefix(kv, inputs)


def shared_step_ok(ev: Envoys) -> bool:
    """Whether the batched step's single 4D mask is right for every layer (no sliding-window layer)."""
    return not any(getattr(a, "sliding_window", None) for a in ev.attn_modules)


def step_inputs(pre: Prefix, n_configs: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Decode-step inputs for C configurations at once: each row's last token C times, all at position t, and
    an additive 4D mask [N, 1, C, S-1+C] under which copy c attends to the row's unpadded prefix and itself."""
    ids, mask = pre.inputs["input_ids"], pre.inputs["attention_mask"]
    n, dev = ids.shape[0], ids.device
    keep = torch.cat(
        [
            mask[:, None, None, :-1].bool().expand(n, 1, n_configs, mask.shape[1] - 1),
            torch.eye(n_configs, dtype=torch.bool, device=dev)[None, None].expand(n, 1, n_configs, n_configs),
        ],
        -1,
    )
    additive = torch.zeros(keep.shape, dtype=dtype, device=dev).masked_fill(~keep, torch.finfo(dtype).min)
    return {
        "input_ids": ids[:, -1:].expand(n, n_configs),
        "attention_mask": additive,
        "position_ids": pre.inputs["position_ids"][:, -1:].expand(n, n_configs),
    }


def model_dtype(lm: Any) -> torch.dtype:
    return next(lm._module.parameters()).dtype  # type: ignore[no-any-return]


def gather_configs(logits: Any, cand: torch.Tensor) -> Any:
    """Candidate logits [C, N, O] (float32) of step logits [N, C, V]; -inf where a row has no option."""
    n, c = logits.shape[0], logits.shape[1]
    cd = cand.to(logits.device)
    idx = cd.clamp(min=0)[:, None, :].expand(n, c, cd.shape[1])
    out = logits.float().gather(2, idx).masked_fill(~(cd >= 0)[:, None, :], float("-inf"))
    return out.transpose(0, 1)


def head_level_step(
    lm: Any,
    ev: Envoys,
    pre: Prefix,
    cand: torch.Tensor,
    sets: list[dict[int, torch.Tensor]],
    alphas: list[float],
) -> torch.Tensor:
    """Candidate logits [S * A, N, O] (set-major) of every (head set, alpha) from the batch's prefix, in
    steps of at most MAX_STEP_CONFIGS configurations. Returned on the model's device."""
    configs = [(d, a) for d in sets for a in alphas]
    dtype = model_dtype(lm)
    out = []
    for s in range(0, len(configs), MAX_STEP_CONFIGS):
        chunk = configs[s : s + MAX_STEP_CONFIGS]
        c = len(chunk)
        step = step_inputs(pre, c, dtype)
        dev = step["input_ids"].device
        adds: dict[int, torch.Tensor] = {}
        for layer in sorted({k for d, _ in chunk for k in d}):
            width = next(d[layer].shape[1] for d, _ in chunk if layer in d)
            zero = torch.zeros(pre.rows, width)
            # copy c's slice is what the single step adds: (a * d[layer]) cast to the model dtype; one copy to
            # the device per layer (the cast rounds each element as the single step's cast does)
            stacked = torch.stack([a * d[layer] if layer in d else zero for d, a in chunk], 1)
            if dev.type == "cuda":  # pinned: the copy is queued without waiting for the device
                stacked = stacked.pin_memory()
            adds[layer] = stacked.to(dev, dtype, non_blocking=True)
        with torch.no_grad(), lm.trace(**step, cache=pre.kv, use_cache=True):
            for layer in sorted(adds):
                x = ev.o_proj[layer].input
                x[:, :] += adds[layer]
            got = gather_configs(ev.lm_head.output, cand).save()
        pre.kv.crop(-c)  # drop the C decoded copies of position t again
        out.append(got)
    return torch.cat(out)


def head_level_logits(
    lm: Any,
    ev: Envoys,
    inputs: dict[str, torch.Tensor],
    cand: torch.Tensor,
    deltas: dict[int, torch.Tensor] | list[dict[int, torch.Tensor]],
    alphas: list[float],
    reuse_prefix: bool = True,
    remote: bool | str = False,
    batched: bool = True,
) -> torch.Tensor:
    """Candidate logits [A, N, O] under head-level steering for every alpha; for a list of S head sets,
    [S * A, N, O] (set-major), all sets sharing one prefix pass (the unsteered prompt up to t).

    `batched`: every (set, alpha) in one decode step (`head_level_step`); else one decode step each."""
    sets = deltas if isinstance(deltas, list) else [deltas]
    if not reuse_prefix or remote:
        return torch.stack(
            [forward_logits(lm, ev, inputs, cand, _scaled(d, a), remote=remote) for d in sets for a in alphas]
        )
    pre = prefix_pass(lm, ev, inputs)
    if batched and shared_step_ok(ev):
        return head_level_step(lm, ev, pre, cand, sets, alphas).cpu()
    return head_level_loop(lm, ev, pre, cand, sets, alphas)


def head_level_loop(
    lm: Any,
    ev: Envoys,
    pre: Prefix,
    cand: torch.Tensor,
    sets: list[dict[int, torch.Tensor]],
    alphas: list[float],
) -> torch.Tensor:
    """One decode step per (head set, alpha) from the prefix: [S * A, N, O] (the unbatched reference)."""
    inputs, kv = pre.inputs, pre.kv
    step = {
        "input_ids": inputs["input_ids"][:, -1:],
        "attention_mask": inputs["attention_mask"],
        "position_ids": inputs["position_ids"][:, -1:],
    }
    out = []
    for d in sets:
        for a in alphas:
            with torch.no_grad(), lm.trace(**step, cache=kv, use_cache=True):
                for layer in sorted(d):
                    x = ev.o_proj[layer].input
                    x[:, -1] += (a * d[layer]).to(x.device, x.dtype)
                logits = ev.lm_head.output[:, -1].save()
            kv.crop(-1)  # drop the decoded position t again (transformers 5: negative = tokens to remove)
            out.append(gather_candidates(logits.cpu(), cand))
    return torch.stack(out)


def _scaled(deltas: dict[int, torch.Tensor], a: float) -> dict[int, torch.Tensor]:
    return {k: a * v for k, v in deltas.items()}
