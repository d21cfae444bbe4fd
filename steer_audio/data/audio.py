"""Audio loading (librosa, 16 kHz mono) and the negative inputs x0 of the two-pass protocol."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from ..errors import SteerAudioError

log = logging.getLogger(__name__)
SR = 16000
NEGATIVES = ("silence", "floor", "noise", "shuffle", "drop")
#: frame length and quantile of the `floor` negative's noise-floor estimate
FLOOR_FRAME_S, FLOOR_QUANTILE = 0.020, 0.10


class AudioMissing(SteerAudioError):
    """An example's audio file is missing or unreadable."""


def import_decoders() -> None:
    """Import the audio decoding stack (librosa's lazy submodules and scipy.signal) in the calling thread.

    Call it before starting a thread that loads audio: the first imports of scipy.signal from two threads
    at once can see the module half-initialised (`NameError: name '_signal_api' is not defined` from the
    capture's loader thread, seen in tests/test_remote_local.py), and the clip would count as missing."""
    import librosa
    import scipy.signal  # noqa: F401

    _ = (librosa.load, librosa.resample)


def load_audio(path: Path | None, array: np.ndarray | None = None, max_seconds: float = 30.0) -> np.ndarray:
    if array is not None:
        wav = np.asarray(array, dtype=np.float32)
    else:
        if path is None:
            raise AudioMissing("no audio file given")
        if not Path(path).exists():
            raise AudioMissing(f"audio file not found: {path}")
        import librosa

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                wav, _ = librosa.load(str(path), sr=SR, mono=True)
        except Exception as e:  # noqa: BLE001 - any decoder failure is the same user-facing problem
            raise AudioMissing(f"cannot read audio {path}: {type(e).__name__}: {e}") from e
    if wav.size == 0:
        raise AudioMissing(f"audio {path} is empty")
    limit = int(max_seconds * SR)
    if wav.shape[0] > limit:
        log.warning(
            "audio %s is %.1f s long: cut to the model's %.0f s window", path, wav.shape[0] / SR, max_seconds
        )
        wav = wav[:limit]
    return wav.astype(np.float32, copy=False)


def duration_hint(path: Path | None, array: np.ndarray | None = None) -> float:
    """The clip's length in seconds from its array or its file header (no decoding); 0.0 when unknown."""
    if array is not None:
        return float(np.asarray(array).shape[0]) / SR
    if path is None:
        return 0.0
    try:
        import soundfile as sf

        return float(sf.info(str(path)).duration)
    except Exception:  # noqa: BLE001 - unreadable headers only lose the ordering hint
        return 0.0


def negative(wav: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    """The negative x0 for a clip: same length (so the same input_ids) for every kind here."""
    if kind == "silence":
        return np.zeros_like(wav)
    rng = np.random.default_rng(seed)
    if kind == "noise":
        rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
        return np.asarray(rng.standard_normal(wav.shape[0]) * rms, dtype=np.float32)
    if kind == "floor":
        return np.asarray(rng.standard_normal(wav.shape[0]) * noise_floor(wav), dtype=np.float32)
    if kind == "shuffle":
        return block_shuffle(wav, rng)
    if kind == "drop":
        raise SteerAudioError("the `drop` negative has no waveform: the prompt is encoded without audio")
    raise SteerAudioError(f"unknown negative {kind!r}: use one of {', '.join(NEGATIVES)}")


def noise_floor(wav: np.ndarray) -> float:
    """The clip's background level: the `FLOOR_QUANTILE` quantile of its 20 ms frame RMS (0.0 for silence).

    On a clip made of an event placed in Gaussian background noise (listen-bench) it estimates that
    noise's sigma: the quietest frames hold no event. The `floor` negative is white noise at this level,
    the clip with its event removed and its recording conditions kept (the matched noise floor of
    ../shared/notes/pilot-text-dominance.md), unlike digital silence, which no training clip resembles."""
    x = np.asarray(wav, dtype=np.float64)
    f = max(1, int(FLOOR_FRAME_S * SR))
    n = x.shape[0] // f
    if n == 0:
        return float(np.sqrt(np.mean(x**2))) if x.size else 0.0
    frames = np.sqrt(np.mean(x[: n * f].reshape(n, f) ** 2, axis=1))
    return float(np.quantile(frames, FLOOR_QUANTILE))


def block_shuffle(
    wav: np.ndarray, rng: np.random.Generator, block_s: float = 0.040, fade_s: float = 0.005
) -> np.ndarray:
    """Cut into 40 ms blocks, permute, reverse some, short cross-fades: keeps loudness and spectrum only."""
    b = max(1, int(block_s * SR))
    n = wav.shape[0]
    blocks = [wav[i : i + b] for i in range(0, n, b)]
    order = rng.permutation(len(blocks))
    out = []
    f = max(1, int(fade_s * SR))
    for j in order:
        blk = blocks[j][::-1] if rng.random() < 0.5 else blocks[j]
        blk = blk.astype(np.float32).copy()
        if blk.shape[0] > 2 * f:
            ramp = np.linspace(0.0, 1.0, f, dtype=np.float32)
            blk[:f] *= ramp
            blk[-f:] *= ramp[::-1]
        out.append(blk)
    res = np.concatenate(out)[:n]
    return res.astype(np.float32)
