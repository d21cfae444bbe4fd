"""Model inputs for a batch of (audio, negative) pairs: one left-padded batch, audio rows then negative rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data.mmau import Example
from ..data.prompts import PromptSpec, candidate_ids, render
from ..errors import SteerAudioError
from ..models.audio_embed import clip_samples, silence_key

MAX_OPTIONS = 10


@dataclass
class Batch:
    ids: list[str]
    #: kwargs for the model's forward (input_ids, attention_mask, position_ids, input_features, ...)
    model_inputs: dict[str, torch.Tensor]
    #: [N, S] bool: positions of audio tokens A(x)
    audio_mask: torch.Tensor
    #: [N, O] long: candidate token per option (padded with 0), and [N, O] bool validity
    cand: torch.Tensor
    cand_valid: torch.Tensor
    n_tokens: list[int]
    n_audio: list[int]
    #: per row: a key when the row's audio input is fully determined by it (the silence negative of a
    #: given length), so its encoder output can be computed once (models/audio_embed.py); else None
    row_keys: list[str | None] | None = None


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that ignore left padding, so a padded row equals the same row run alone."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def encode(
    processor: Any,
    examples: list[Example],
    wavs: list[np.ndarray],
    negs: list[np.ndarray] | None,
    ps: PromptSpec,
    audio_token_id: int,
    feature_device: str | None = None,
    audio: bool = True,
    clip_features: bool = False,
) -> Batch:
    """Encode B examples into 2B rows (audio then negative), or B rows when `negs` is None.

    `audio=False` encodes the prompts with no audio at all (the `drop` negative: not position-aligned).
    `clip_features` (Qwen2-Audio's processor, for the clip-length encoder only) computes the log-mel features
    on the batch's clip length instead of the whole window (`models.audio_embed.clip_samples`): the frames the
    encoder reads are the same, the model's own forward (which needs the whole window) cannot take them."""
    texts = [render(processor, ex, ps, audio) for ex in examples]
    audios = list(wavs)
    if negs is not None:
        texts = texts + texts
        audios = audios + list(negs)
    tok = processor.tokenizer
    old_side = tok.padding_side
    tok.padding_side = "left"
    try:
        kw: dict[str, Any] = (
            {"device": feature_device} if feature_device and feature_device.startswith("cuda") else {}
        )
        # log-mel features on the GPU when there is one (identical to the CPU path; the CPU STFT of 30 s
        # windows is otherwise the capture's bottleneck on a GPU machine)
        if audio and clip_features:
            longest = max(len(a) for a in audios)
            kw["audio_kwargs"] = {"max_length": clip_samples(processor.feature_extractor, longest)}
        if audio:
            enc = processor(
                text=texts, audio=audios, return_tensors="pt", padding=True, sampling_rate=16000, **kw
            )
        else:
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tok.padding_side = old_side
    ids = enc["input_ids"]
    b = len(examples)
    if negs is not None and not torch.equal(ids[:b], ids[b:]):
        bad = [examples[i].id for i in range(b) if not torch.equal(ids[i], ids[b + i])]
        raise SteerAudioError(f"audio and negative passes give different input_ids for item(s) {bad}")
    cands = [candidate_ids(tok, ex, ps) for ex in examples]
    if negs is not None:
        cands = cands + cands
    o = max(len(c) for c in cands)
    if o > MAX_OPTIONS:
        raise SteerAudioError(f"at most {MAX_OPTIONS} options are supported, got {o}")
    cand = torch.zeros(len(cands), o, dtype=torch.long)
    valid = torch.zeros(len(cands), o, dtype=torch.bool)
    for i, c in enumerate(cands):
        cand[i, : len(c)] = torch.tensor(c)
        valid[i, : len(c)] = True
    mask = enc["attention_mask"]
    model_inputs = {
        k: v
        for k, v in enc.items()
        if k
        in ("input_ids", "attention_mask", "input_features", "feature_attention_mask", "input_features_mask")
    }
    model_inputs["position_ids"] = position_ids(mask)
    audio_mask = ids == audio_token_id
    # all-zero rows (the silence negative, and audio rows that are silent themselves, e.g. listen-bench's
    # silence twins) share one encoder output per length
    fe = getattr(processor, "feature_extractor", None)
    row_keys: list[str | None] = [silence_key(w, fe) for w in audios]
    return Batch(
        ids=[ex.id for ex in examples],
        model_inputs=model_inputs,
        audio_mask=audio_mask,
        cand=cand,
        cand_valid=valid,
        n_tokens=mask.sum(-1).tolist()[:b],
        n_audio=audio_mask.sum(-1).tolist()[:b],
        row_keys=row_keys if audio else None,
    )
