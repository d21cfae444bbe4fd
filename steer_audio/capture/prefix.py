"""Shared prompt prefixes: rows of a capture batch that agree from their first token through their last audio
token (the same clip and the same template before it) run that prefix through the decoder once.

Causal attention makes position j depend on positions <= j only, so a prefix's keys and values are the same
for every row that starts with it. The capture needs the final position of each row only; it reads the
prefix's keys from the shared pass's cache and runs each row's own suffix (the text after the audio) against
them. listen-bench's twins (one clip under a neutral, a misleading and a consistent prompt) and the silence
negatives of one clip length share their prefix, about 40% of the main job's decoder tokens.

The result is the same computation in other matrix shapes: equal to the full-row trace up to float rounding
(tests/test_prefix_share.py). Used for local float32 traces only (`applies`); a batch in which no two rows
share a prefix, or whose sliding window is shorter than the rows, is traced whole as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from ..models.arch import resolve


@dataclass
class Shared:
    """A batch split into one pass over the distinct prefixes and a trace over every row's suffix."""

    #: the suffix trace's model kwargs: inputs_embeds, attention_mask (prefix + suffix), position_ids, cache
    inputs: dict[str, Any]
    #: [R, P + T] bool: audio positions in the prefix + suffix layout
    audio_mask: torch.Tensor
    #: per layer [R, KV, P, d]: the prefix keys after RoPE, each row's group's
    past_keys: list[torch.Tensor]
    #: rows and distinct prefixes (for tests and benchmarks)
    n_rows: int
    n_prefixes: int


def applies(m: Any) -> bool:
    """Local runs in float32 on the fast audio path (inputs_embeds) only."""
    return bool(not m.remote and m.uses_fast_audio and m.dtype == torch.float32)


def prefix_groups(
    inputs: dict[str, torch.Tensor], audio_mask: torch.Tensor
) -> tuple[list[int], list[int]] | None:
    """(group of each row, representative row of each group) over rows equal from their first token through
    their last audio token (input ids and input embeddings both), or None when no two rows share one or a row
    has no audio token."""
    ids, att, emb = inputs["input_ids"], inputs["attention_mask"], inputs["inputs_embeds"]
    rows = ids.shape[0]
    if not bool(audio_mask.any(-1).all()):
        return None
    s = ids.shape[1]
    first = (s - att.long().sum(-1)).tolist()
    last = (s - 1 - audio_mask.flip(-1).long().argmax(-1)).tolist()
    gid: list[int] = []
    reps: list[int] = []
    by_ids: dict[bytes, list[int]] = {}
    for r in range(rows):
        a, b = first[r], last[r] + 1
        key = ids[r, a:b].numpy().tobytes()
        for g in by_ids.get(key, []):
            q = reps[g]
            if torch.equal(emb[r, a:b], emb[q, first[q] : last[q] + 1]):
                gid.append(g)
                break
        else:
            by_ids.setdefault(key, []).append(len(reps))
            gid.append(len(reps))
            reps.append(r)
    return (gid, reps) if len(reps) < rows else None


def share(m: Any, inputs: dict[str, torch.Tensor], audio_mask: torch.Tensor) -> Shared | None:
    """Run the distinct prefixes of a batch once; None when nothing is shared (trace the batch whole)."""
    if "inputs_embeds" not in inputs or inputs["inputs_embeds"].is_cuda:
        return None
    groups = prefix_groups(inputs, audio_mask)
    if groups is None:
        return None
    gid, reps = groups
    ids, att, pos, emb = (inputs[k] for k in ("input_ids", "attention_mask", "position_ids", "inputs_embeds"))
    s = ids.shape[1]
    first = s - att.long().sum(-1)
    last = s - 1 - audio_mask.flip(-1).long().argmax(-1)
    plen = (last + 1 - first)[reps]
    p = int(plen.max())
    t = int((s - 1 - last).max())  # the longest suffix: tokens after the last audio token
    if any(w is not None and w < p + t for w in m.geom.windows):
        return None  # a window shorter than the rows: the mask's index distances would differ
    # the prefixes, left-padded to p
    g_n = len(reps)
    pre_emb = emb.new_zeros(g_n, p, emb.shape[-1])
    pre_att = att.new_zeros(g_n, p)
    pre_pos = pos.new_zeros(g_n, p)
    pre_audio = torch.zeros(g_n, p, dtype=torch.bool)
    for g, r in enumerate(reps):
        a, b, n = int(first[r]), int(last[r]) + 1, int(plen[g])
        pre_emb[g, p - n :] = emb[r, a:b]
        pre_att[g, p - n :] = att[r, a:b]
        pre_pos[g, p - n :] = pos[r, a:b]
        pre_audio[g, p - n :] = audio_mask[r, a:b]
    decoder = resolve(m.lm._module, m.arch.decoder_layers.rsplit(".", 1)[0], m.name)
    cache = DynamicCache()
    decoder(inputs_embeds=pre_emb, attention_mask=pre_att, position_ids=pre_pos, cache=cache, use_cache=True)
    index = torch.tensor(gid)
    cache.reorder_cache(index)  # type: ignore[arg-type]
    # every row's suffix: its last t positions, the ones at or before its last audio token masked
    col = torch.arange(s - t, s)
    suf_att = (col[None, :] > last[:, None]).to(att.dtype) * att[:, s - t :]
    return Shared(
        inputs={
            "inputs_embeds": emb[:, s - t :],
            "attention_mask": torch.cat([pre_att[index], suf_att], 1),
            "position_ids": pos[:, s - t :],
            "cache": cache,
        },
        audio_mask=torch.cat([pre_audio[index], torch.zeros(len(gid), t, dtype=torch.bool)], 1),
        past_keys=[layer.keys for layer in cache.layers],  # type: ignore[union-attr,misc]
        n_rows=len(gid),
        n_prefixes=g_n,
    )
