"""Data-parallel capture: one model replica per device, whole batches dealt round-robin, caches merged.

Batch b of the single-process order goes to worker b mod N, so every batch holds exactly the rows it would
hold in a single-process run and the merged cache equals the single-process cache."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from ..data.mmau import Example
from ..errors import SteerAudioError
from ..io import CAPTURE_INDEX, CAPTURE_SHARD, READOUT, read_json
from .cache import CaptureCache

log = logging.getLogger(__name__)


def deal(examples: list[Example], batch_size: int, n: int) -> list[list[Example]]:
    batches = [examples[i : i + batch_size] for i in range(0, len(examples), batch_size)]
    return [[e for b in batches[k::n] for e in b] for k in range(n)]


def _worker(
    k: int, device: str, load_kw: dict[str, Any], examples: list[Example], out: str, cap_kw: dict[str, Any]
) -> None:
    import time

    from ..io import write_json
    from ..models import loaded
    from .run import STAT_KEYS, run_capture

    t0 = time.perf_counter()
    m = loaded.load(device=device, **load_kw)
    t1 = time.perf_counter()
    stats: dict[str, Any] = {}
    run_capture(m, examples, Path(out), stats=stats, **cap_kw)
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)
    t2 = time.perf_counter()
    ends = stats.get("batch_end", [])
    timing: dict[str, Any] = {
        "worker": k,
        "device": device,
        "examples": len(examples),
        "load_s": t1 - t0,
        "capture_s": t2 - t1,
        # from the end of the first batch (cold start: first trace, kernel selection) to the end of the last
        "batches": len(ends),
        "steady_s": (ends[-1] - ends[0]) if len(ends) > 1 else None,
        # time.perf_counter is system-wide monotonic on Linux: comparable across the workers
        "first_batch_end": ends[0] if ends else None,
        "last_batch_end": ends[-1] if ends else None,
        "batch_end": ends,
        **{k_: stats[k_] for k_ in STAT_KEYS if k_ in stats},
    }
    write_json(Path(out).parent / f"timing-worker-{k}.json", timing)


def run_capture_parallel(
    load_kw: dict[str, Any],
    devices: list[str],
    examples: list[Example],
    out_dir: Path,
    key: dict[str, Any],
    readout_ids: list[int],
    **cap_kw: Any,
) -> CaptureCache:
    from .backends import selected

    if (backend := selected()) is not None:  # another registered backend (capture/backends.py), e.g. Ray
        return backend(load_kw, devices, examples, out_dir, key, readout_ids, **cap_kw)  # type: ignore[no-any-return]
    import torch.multiprocessing as mp

    out_dir = Path(out_dir)
    cache = CaptureCache(out_dir)
    cache.bind(key)
    from .run import capture_order

    todo = capture_order([e for e in examples if e.id not in cache.done])
    parts = deal(todo, int(cap_kw.get("batch_size", 8)), len(devices))
    cap_kw = {**cap_kw, "readout_ids": readout_ids}
    ctx = mp.get_context("spawn")
    procs = []
    for k, (dev, part) in enumerate(zip(devices, parts, strict=True)):
        if not part:
            continue
        p = ctx.Process(target=_worker, args=(k, dev, load_kw, part, str(out_dir / f"worker-{k}"), cap_kw))
        procs.append((k, p))
    # start() hands each child its arguments through a pipe and returns only once the child has read them
    # (after its imports): started one after the other, the workers would run staggered by that start-up
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, len(procs))) as pool:
        list(pool.map(lambda kp: kp[1].start(), procs))
    failed = []
    for k, p in procs:
        p.join()
        if p.exitcode != 0:
            failed.append(k)
    merge(out_dir, [out_dir / f"worker-{k}" for k, _ in procs], cache)
    if failed:
        raise SteerAudioError(
            f"capture worker(s) {failed} failed; what they finished is merged, rerun to resume"
        )
    return cache


def merge(out_dir: Path, workers: list[Path], cache: CaptureCache) -> None:
    """Move every worker's shards into the main cache (renumbered) and merge the indexes; idempotent."""
    for w in workers:
        idx_path = w / CAPTURE_INDEX
        if not idx_path.exists():
            continue
        idx = read_json(idx_path)
        by_shard: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for ex_id, e in idx["examples"].items():
            by_shard.setdefault(e["shard"], []).append((ex_id, e))
        for shard in sorted(by_shard):
            k = int(cache.index["shards"])
            name = CAPTURE_SHARD.format(k)
            shutil.move(str(w / shard), str(out_dir / name))
            for ex_id, e in by_shard[shard]:
                cache.index["examples"][ex_id] = {**e, "shard": name}
            cache.index["shards"] = k + 1
            cache.flush()
        for ex_id, why in idx["missing"].items():
            cache.index["missing"][ex_id] = why
        if (w / READOUT).exists() and not (out_dir / READOUT).exists():
            shutil.move(str(w / READOUT), str(out_dir / READOUT))
        cache.flush()
        shutil.rmtree(w)
