"""Host-side preparation of capture batches: audio, negatives, prompts, tokens and log-mel features.

On a GPU the capture trace is launch-bound: the host thread that launches the kernels is the bottleneck, so
preparation in a thread of the same process steals its GIL (measured on an H100: 43.8 pairs/s for the bare
trace, 33 pairs/s with a preparing thread beside it). `Preparer` therefore prepares batches in worker
*processes* when the trace runs on a local CUDA device (features on the worker's CPU, which the CPU tests
check equal the GPU path), and in one thread otherwise (CPU runs, where extra processes would only compete
for the same cores, and remote runs). The worker processes are spawned once per processor and reused by
later captures of the same process.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.audio import AudioMissing, load_audio, negative
from ..data.mmau import Example
from ..data.prompts import PromptSpec
from ..errors import SteerAudioError
from .inputs import encode

log = logging.getLogger(__name__)

PROCS_ENV = "STEER_AUDIO_PREP_PROCS"


@dataclass(frozen=True)
class PrepSpec:
    """Everything `prepare_batch` needs besides the processor (picklable: it travels to worker processes)."""

    window_s: float
    negative_kind: str
    strict: bool
    seed: int
    prompt: PromptSpec
    audio_token_id: int
    feature_device: str | None


def neg_seed(seed: int, ex_id: str) -> int:
    import zlib

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
        b_a = encode(processor, ok, wavs, None, spec.prompt, tok_id, fd)
        b_n = encode(processor, ok, [], None, spec.prompt, tok_id, fd, audio=False)
        return (b_a, b_n), missing
    negs = [
        negative(w, spec.negative_kind, seed=neg_seed(spec.seed, ex.id))
        for w, ex in zip(wavs, ok, strict=True)
    ]
    return encode(processor, ok, wavs, negs, spec.prompt, tok_id, fd), missing


# ----------------------------------------------------------------------------------------------
# worker processes

_WORKER_PROCESSOR: Any = None


def _init_worker(processor: Any, threads: int) -> None:
    import torch

    global _WORKER_PROCESSOR
    torch.set_num_threads(threads)
    _WORKER_PROCESSOR = processor


def _worker_prepare(spec: PrepSpec, chunk: list[Example]) -> tuple[Any, list[tuple[Example, str]]]:
    return prepare_batch(_WORKER_PROCESSOR, spec, chunk)


def _warm() -> int:
    return os.getpid()


_POOLS: dict[int, tuple[Any, ProcessPoolExecutor, int]] = {}


def _process_pool(processor: Any, procs: int) -> ProcessPoolExecutor:
    """A spawned pool for this processor, kept for later captures (spawn: the parent holds CUDA)."""
    key = id(processor)
    held = _POOLS.get(key)
    if held is not None and held[0] is processor and held[2] == procs:
        return held[1]
    if held is not None:
        held[1].shutdown(cancel_futures=True)
    import torch.multiprocessing as tmp  # registers shared-memory pickling of tensors

    threads = max(1, min(4, (os.cpu_count() or 2) // max(1, 2 * procs)))
    pool = ProcessPoolExecutor(
        max_workers=procs,
        mp_context=tmp.get_context("spawn"),
        initializer=_init_worker,
        initargs=(processor, threads),
    )
    # start every worker now (imports take seconds), so the first batches do not wait for them in turn
    for f in [pool.submit(_warm) for _ in range(procs)]:
        f.result()
    _POOLS[key] = (processor, pool, procs)
    return pool


@atexit.register
def _shutdown_pools() -> None:
    for _, pool, _ in list(_POOLS.values()):
        pool.shutdown(cancel_futures=True)
    _POOLS.clear()


def default_procs(feature_device: str | None, remote: bool) -> int:
    """Worker processes for a capture: `STEER_AUDIO_PREP_PROCS` if set, else 4 (at most a quarter of the
    cores) for a local CUDA trace and 0 (one thread) otherwise."""
    env = os.environ.get(PROCS_ENV)
    if env is not None:
        try:
            n = int(env)
        except ValueError as err:
            raise SteerAudioError(f"{PROCS_ENV}={env!r}: expected a whole number of processes") from err
        return max(0, n)
    if remote or not (feature_device or "").startswith("cuda"):
        return 0
    return max(1, min(4, (os.cpu_count() or 4) // 4))


class Preparer:
    """Prepares batches ahead of the trace: `submit(chunk)` returns a future of `prepare_batch`'s result.

    `ahead` is how many batches may be in preparation at once (one per worker process)."""

    def __init__(self, processor: Any, spec: PrepSpec, procs: int) -> None:
        self.procs = procs
        self.ahead = max(1, procs)
        self._thread: Executor | None = None
        self._futures: list[Future] = []
        self._submit: Callable[[list[Example]], Future]
        if procs > 0:
            # the workers compute features on their CPU; the trace moves them to the device
            self.spec = PrepSpec(**{**spec.__dict__, "feature_device": None})
            pool = _process_pool(processor, procs)
            self._submit = lambda chunk: pool.submit(_worker_prepare, self.spec, chunk)
        else:
            self.spec = spec
            self._thread = ThreadPoolExecutor(max_workers=1)
            thread = self._thread
            self._submit = lambda chunk: thread.submit(prepare_batch, processor, self.spec, chunk)

    def submit(self, chunk: list[Example]) -> Future:
        f = self._submit(chunk)
        self._futures.append(f)
        return f

    def __enter__(self) -> Preparer:
        return self

    def __exit__(self, *exc: object) -> None:
        for f in self._futures:  # batches an error left unconsumed: the shared pool must not keep them
            f.cancel()
        if self._thread is not None:
            self._thread.shutdown(cancel_futures=True)
