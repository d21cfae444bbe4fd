"""The frozen audio encoder's outputs, computed once per clip and cached on the host (safetensors).

Silence twins share one entry per length (``audio_key``): every all-zero clip of a length encodes alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from .config import TrainError
from .device import model_device

SAMPLING_RATE = 16_000


def load_wave(data_dir: Path, audio_id: str, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    import soundfile as sf

    y, sr = sf.read(str(data_dir / audio_id), dtype="float32")
    if sr != sampling_rate:
        raise TrainError(f"{audio_id}: {sr} Hz, expected {sampling_rate}")
    return np.asarray(y, dtype=np.float32)


def audio_key(data_dir: Path, row: dict) -> str:
    """The cache key of a row's clip: its file, or ``silence-<frames>`` for an all-zero twin."""
    if row["condition"] == "silence":
        import soundfile as sf

        return f"silence-{sf.info(str(data_dir / row['audio_id'])).frames}"
    return row["audio_id"]


def encode_audio(model: object, processor: object, waves: Sequence[np.ndarray]) -> list[torch.Tensor]:
    """Audio-tower outputs (before the projector), one [n_audio_tokens, d_model] tensor per wave: the same
    features as ``Qwen2AudioModel.forward``, with the encoder run on the clip's length (models/audio_embed.py)."""
    from ..models.audio_embed import tower_on_clip_length

    fe = processor.feature_extractor  # type: ignore[attr-defined]
    feats = fe(
        list(waves),
        sampling_rate=fe.sampling_rate,
        return_attention_mask=True,
        padding="max_length",
        return_tensors="pt",
    )
    tower = model.model.audio_tower  # type: ignore[attr-defined]
    dev = model_device(model)
    with torch.no_grad():
        h, out_len = tower_on_clip_length(
            tower, feats["input_features"].to(dev), feats["attention_mask"].to(dev)
        )
    h = h.float().cpu()  # the cache lives on the host (safetensors), one copy per batch
    return [h[i, : int(out_len[i])].clone() for i in range(h.shape[0])]


def build_encoder_cache(
    model: object,
    processor: object,
    data_dir: Path,
    rows: Sequence[dict],
    path: Path,
    batch: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Encode every distinct clip of ``rows`` once (silence twins: once per length); cache to ``path``."""
    from safetensors.torch import load_file

    from ..io import save_tensors

    sr = processor.feature_extractor.sampling_rate  # type: ignore[attr-defined]
    cache: dict[str, torch.Tensor] = load_file(str(path)) if path.is_file() else {}
    todo: dict[str, str] = {}
    for r in rows:
        key = audio_key(data_dir, r)
        if key not in cache and key not in todo:
            todo[key] = r["audio_id"]
    keys = list(todo)
    for i in range(0, len(keys), batch):
        chunk = keys[i : i + batch]
        waves = [load_wave(data_dir, todo[k], sr) for k in chunk]
        for k, h in zip(chunk, encode_audio(model, processor, waves), strict=True):
            cache[k] = h
        if progress is not None:
            progress(min(i + batch, len(keys)), len(keys))
        if (i // batch) % 25 == 24 or i + batch >= len(keys):
            save_tensors(path, cache)
    return cache
