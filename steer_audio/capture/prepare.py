"""Host-side preparation of capture batches: audio, negatives, prompts, tokens and log-mel features
(`run_capture` runs it one batch ahead of the trace in a worker thread)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.audio import AudioMissing, load_audio, negative
from ..data.mmau import Example
from ..data.prompts import PromptSpec
from .inputs import encode


@dataclass(frozen=True)
class PrepSpec:
    """Everything `prepare_batch` needs besides the processor."""

    window_s: float
    negative_kind: str
    strict: bool
    seed: int
    prompt: PromptSpec
    audio_token_id: int
    feature_device: str | None
    #: log-mel features on the clip length, not the whole window (capture/inputs.py `encode`)
    clip_features: bool = False


def prep_spec(m: Any, negative_kind: str, strict: bool, seed: int) -> PrepSpec:
    """The PrepSpec of a capture of the loaded model `m` (features where `m.feature_device` says, on the clip
    length when `m.clip_features` and the clip-length encoder is in use)."""
    return PrepSpec(
        window_s=m.audio_window_s,
        negative_kind=negative_kind,
        strict=strict,
        seed=seed,
        prompt=m.prompt,
        audio_token_id=m.geom.audio_token_id,
        feature_device=m.feature_device,
        clip_features=bool(m.clip_features and m.uses_fast_audio),
    )


def neg_seed(seed: int, ex_id: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(ex_id.encode())) & 0x7FFFFFFF


def prepare_batch(
    processor: Any, spec: PrepSpec, chunk: list[Example]
) -> tuple[Any, list[tuple[Example, str]]]:
    """Load audio, make negatives and encode one batch. Returns (Batch | (audio, no-audio) | None, missing)."""
    ok: list[Example] = []
    wavs: list[np.ndarray] = []
    missing: list[tuple[Example, str]] = []
    for ex in chunk:
        try:
            wavs.append(load_audio(ex.audio_path, ex.audio_array, max_seconds=spec.window_s))
            ok.append(ex)
        except AudioMissing as err:
            if spec.strict:
                raise
            missing.append((ex, str(err)))
    if not ok:
        return None, missing
    fd, tok_id = spec.feature_device, spec.audio_token_id
    if spec.negative_kind == "drop":  # the same prompts with no audio at all: a separate, unaligned batch
        b_a = encode(processor, ok, wavs, None, spec.prompt, tok_id, fd, clip_features=spec.clip_features)
        b_n = encode(processor, ok, [], None, spec.prompt, tok_id, fd, audio=False)
        return (b_a, b_n), missing
    negs = [
        negative(w, spec.negative_kind, seed=neg_seed(spec.seed, ex.id))
        for w, ex in zip(wavs, ok, strict=True)
    ]
    return encode(
        processor, ok, wavs, negs, spec.prompt, tok_id, fd, clip_features=spec.clip_features
    ), missing
