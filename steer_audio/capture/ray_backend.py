"""Data-parallel capture on Ray: one model replica per GPU (or CPU worker) of one host or a Ray cluster.

The examples still to capture are put in the single-process order (capture_order) and cut into the same
batches as one process; consecutive batches form shards, written to a plan file once. Each shard is one call
on a replica actor (`num_gpus=1`, or `num_cpus=1` for CPU replicas) and captures into its own folder under
`ray-shards/` with run_capture, so its safetensors shards and index are written atomically batch by batch. A
replica that dies is restarted and the call retried (`max_retries`); the retry resumes the shard's folder by
example id, so nothing finished is lost. Free replicas take the next shard (no static deal). When every shard
is complete, the folders are merged into the main cache in plan order: the merged cache holds the same shard
files, in the same order, as the single-process cache. A rerun reads the plan and captures only what is
missing.

Ray must be installed (`pip install 'steer-audio[ray]'`) on every node, with steer_audio importable. The
replicas write their shard folders themselves: on a cluster of several nodes the run directory (and the audio)
must be on a file system that every node mounts at the same path."""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..data.mmau import Example
from ..errors import SteerAudioError
from ..io import CAPTURE_INDEX, read_json, sha256_json, write_json, write_text
from .cache import CaptureCache
from .parallel import merge
from .run import capture_order

log = logging.getLogger(__name__)

#: the shard plan (written once, read by a rerun) and the shards' own folders, inside the capture folder
RAY_PLAN = "ray-plan.json"
RAY_SHARDS = "ray-shards"
SHARD_DIR = "shard-{:05d}"
#: one line per call on a shard (pid, device, attempt), kept in the shard's folder
ATTEMPTS = "attempts.json"
#: what the last run did, per shard (ran or skipped, attempts, time): beside the cache files
RAY_TIMING = "timing-ray.json"
#: shards per replica when not given: small enough to balance and to lose little to a dead replica
SHARDS_PER_REPLICA = 4


@dataclass(frozen=True)
class Fault:
    """Test-only: the replica capturing shard `shard` kills its own process (os._exit) right after it has
    written `after_batches` batches, on the first attempt only (a marker file in the shard's folder)."""

    shard: int
    after_batches: int = 1


def plan_shards(
    examples: list[Example], batch_size: int, replicas: int, shard_batches: int | None = None
) -> list[list[str]]:
    """Example ids per shard: the single-process batches (capture_order, batch_size), consecutive batches
    grouped `shard_batches` at a time (default: about SHARDS_PER_REPLICA shards per replica)."""
    if batch_size < 1:
        raise SteerAudioError("--batch-size must be at least 1")
    order = [e.id for e in capture_order(examples)]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if shard_batches is None:
        shard_batches = max(1, math.ceil(len(batches) / (SHARDS_PER_REPLICA * max(1, replicas))))
    if shard_batches < 1:
        raise SteerAudioError("shard_batches must be at least 1")
    return [
        [i for b in batches[k : k + shard_batches] for i in b] for k in range(0, len(batches), shard_batches)
    ]


def run_capture_ray(
    load_kw: dict[str, Any],
    devices: list[str],
    examples: list[Example],
    out_dir: Path,
    key: dict[str, Any],
    readout_ids: list[int],
    *,
    address: str | None = None,
    max_retries: int = 3,
    shard_batches: int | None = None,
    fault: Fault | None = None,
    **cap_kw: Any,
) -> CaptureCache:
    """Capture `examples` into `out_dir` with len(devices) Ray replicas (same arguments as
    run_capture_parallel). `devices` only says how many replicas and of which kind: "cuda*" asks Ray for one
    GPU each, "cpu" for one CPU each. `address`: the Ray cluster to join ("auto", "HOST:PORT", "ray://...");
    None joins the cluster this process is connected to, else starts a local one on 127.0.0.1."""
    import ray

    out_dir = Path(out_dir)
    cache = CaptureCache(out_dir)
    cache.bind(key)
    batch_size = int(cap_kw.get("batch_size", 8))
    by_id = {e.id: e for e in examples}
    todo = [e for e in examples if e.id not in cache.done]
    shards = _load_or_write_plan(out_dir, key, batch_size, todo, cache.done, len(devices), shard_batches)
    shard_dirs = [out_dir / RAY_SHARDS / SHARD_DIR.format(s) for s in range(len(shards))]
    pending = [
        s
        for s, ids in enumerate(shards)
        if not all(i in cache.done for i in ids) and not _complete(shard_dirs[s], ids)
    ]
    timing: dict[str, Any] = {
        "backend": "ray",
        "replicas": len(devices),
        "shards": len(shards),
        "shard_ids": shards,
        "ran": {},
        "skipped": [s for s in range(len(shards)) if s not in pending],
    }
    if pending:
        started = _connect(ray, address, devices)
        try:
            timing["ran"], failed = _run_shards(
                ray,
                load_kw,
                devices,
                [(s, [by_id[i] for i in shards[s]], shard_dirs[s]) for s in pending],
                {**cap_kw, "readout_ids": readout_ids},
                max_retries,
                fault,
            )
        finally:
            if started:
                ray.shutdown()
        if failed:
            timing["failed"] = failed
            write_json(out_dir / RAY_TIMING, timing)
            first = min(failed)
            raise SteerAudioError(
                f"capture shard(s) {sorted(failed)} failed (shard {first}: {failed[first]}); the finished "
                f"shards are kept in {out_dir / RAY_SHARDS}, rerun to resume"
            )
    for d in shard_dirs:
        if d.exists():
            _check_key(d, key)
    merge(out_dir, [d for d in shard_dirs if d.exists()], cache)
    shutil.rmtree(out_dir / RAY_SHARDS, ignore_errors=True)
    (out_dir / RAY_PLAN).unlink(missing_ok=True)
    write_json(out_dir / RAY_TIMING, timing)
    return cache


def _load_or_write_plan(
    out_dir: Path,
    key: dict[str, Any],
    batch_size: int,
    todo: list[Example],
    done: set[str],
    replicas: int,
    shard_batches: int | None,
) -> list[list[str]]:
    """The plan of an earlier, unfinished run if it covers exactly what is left to do; else a new one."""
    path = out_dir / RAY_PLAN
    left = {e.id for e in todo}
    if path.exists():
        plan = read_json(path)
        planned = {i for ids in plan["shards"] for i in ids}
        if (
            sha256_json(plan["key"]) == sha256_json(key)  # as JSON: a tuple read back is a list
            and plan["batch_size"] == batch_size
            and left <= planned
            and planned - left <= done
        ):
            log.info("resuming the Ray capture plan in %s (%d shards)", path, len(plan["shards"]))
            return [list(ids) for ids in plan["shards"]]
        raise SteerAudioError(
            f"{path} belongs to an unfinished run with other examples or settings: rerun it with the same "
            f"ones, or delete {path} and {out_dir / RAY_SHARDS}"
        )
    shards = plan_shards(todo, batch_size, replicas, shard_batches)
    if (out_dir / RAY_SHARDS).exists():
        raise SteerAudioError(f"{out_dir / RAY_SHARDS} exists without {path}: delete it and rerun")
    write_json(path, {"key": key, "batch_size": batch_size, "shards": shards})
    return shards


def _complete(shard_dir: Path, ids: list[str]) -> bool:
    idx = shard_dir / CAPTURE_INDEX
    if not idx.exists():
        return False
    cached = read_json(idx)
    return all(i in cached["examples"] or i in cached["missing"] for i in ids)


def _check_key(shard_dir: Path, key: dict[str, Any]) -> None:
    idx = shard_dir / CAPTURE_INDEX
    if idx.exists() and sha256_json(read_json(idx)["key"]) != sha256_json(key):
        raise SteerAudioError(
            f"{shard_dir} was captured with other settings than this run (model, dtype, prompt, data or "
            "negative differ on a replica): delete it and rerun"
        )


def _connect(ray: Any, address: str | None, devices: list[str]) -> bool:
    """Join `address` (or the cluster already joined); else start a local Ray on 127.0.0.1. True if this
    call started Ray (and must shut it down)."""
    if ray.is_initialized():
        return False
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    if address is None:
        kw["_node_ip_address"] = "127.0.0.1"
        if not any(d.startswith("cuda") for d in devices):
            kw["num_cpus"] = len(devices)  # logical CPUs: one per CPU replica, whatever the core count
    else:
        kw["address"] = address
    try:
        ray.init(**kw)
    except ConnectionError as e:
        raise SteerAudioError(f"cannot join the Ray cluster at {address}: {e}") from e
    return True


def _run_shards(
    ray: Any,
    load_kw: dict[str, Any],
    devices: list[str],
    work: list[tuple[int, list[Example], Path]],
    cap_kw: dict[str, Any],
    max_retries: int,
    fault: Fault | None,
) -> tuple[dict[str, Any], dict[int, str]]:
    """Hand the shards to len(devices) replicas, each free replica taking the next; retries are Ray's
    (actor restart + call retry). Returns the per-shard summaries and why each failed shard failed."""
    gpu = any(d.startswith("cuda") for d in devices)
    res: dict[str, Any] = {"num_gpus": 1} if gpu else {"num_cpus": 1}
    actor_cls = ray.remote(_Replica).options(**res, max_restarts=max_retries, max_task_retries=max_retries)
    n = min(len(devices), len(work))
    actors = [actor_cls.remote(load_kw, "cuda" if gpu else "cpu") for _ in range(n)]
    queue = list(work)
    running: dict[Any, tuple[Any, int]] = {}
    ran: dict[str, Any] = {}
    failed: dict[int, str] = {}

    def submit(actor: Any) -> None:
        s, exs, d = queue.pop(0)
        ref = actor.capture.remote(s, exs, str(d), cap_kw, fault)
        running[ref] = (actor, s)

    for a in actors:
        if queue:
            submit(a)
    while running:
        [ref], _ = ray.wait(list(running), num_returns=1)
        actor, s = running.pop(ref)
        try:
            ran[str(s)] = ray.get(ref)
        except ray.exceptions.RayActorError as e:  # the replica died more often than max_retries
            log.error("capture shard %d failed: %s", s, e)
            failed[s] = f"its replica died ({_first_line(e)})"
            continue  # the replica is gone for good: the others take the rest
        except ray.exceptions.RayTaskError as e:  # an error in the capture itself (not retried)
            failed[s] = _first_line(getattr(e, "cause", None) or e)
        if queue:
            submit(actor)
    for s, _, _ in queue:  # no replica left
        failed[s] = "no replica was left to run it"
    return ran, failed


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class _Replica:
    """One model replica (a Ray actor): loads the model once, then captures shard after shard."""

    def __init__(self, load_kw: dict[str, Any], device: str):
        from ..models import loaded

        self.device = "cuda:0" if device == "cuda" else device  # Ray's CUDA_VISIBLE_DEVICES: one GPU
        t0 = time.perf_counter()
        self.m = loaded.load(device=self.device, **load_kw)
        self.load_s = time.perf_counter() - t0

    def capture(
        self, shard: int, examples: list[Example], shard_dir: str, cap_kw: dict[str, Any], fault: Fault | None
    ) -> dict[str, Any]:
        from .run import run_capture

        d = Path(shard_dir)
        attempts = read_json(d / ATTEMPTS) if (d / ATTEMPTS).exists() else []
        attempts.append({"pid": os.getpid(), "device": self.device, "load_s": self.load_s})
        write_json(d / ATTEMPTS, attempts)
        before = len(CaptureCache(d).done)
        stats: dict[str, Any] = {}
        if fault is not None and fault.shard == shard and not (d / ".fault-fired").exists():
            stats["batch_end"] = _Tripwire(fault.after_batches, lambda: write_text(d / ".fault-fired", ""))
        t0 = time.perf_counter()
        run_capture(self.m, examples, d, stats=stats, **cap_kw)
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)
        ends = stats.get("batch_end", [])
        return {
            "attempts": attempts,
            "examples": len(examples),
            "captured_now": len(CaptureCache(d).done) - before,
            "capture_s": time.perf_counter() - t0,
            "steady_s": (ends[-1] - ends[0]) if len(ends) > 1 else None,
            # time.perf_counter is system-wide monotonic on Linux: comparable across the replicas of one host
            "batch_end": list(ends),
            "fault": asdict(fault) if fault is not None and fault.shard == shard else None,
        }


class _Tripwire(list):
    """Test-only (Fault): a batch_end list that kills the process once `n` batches are written."""

    def __init__(self, n: int, mark: Callable[[], None]):
        super().__init__()
        self.n, self.mark = n, mark

    def append(self, t: Any) -> None:
        super().append(t)
        if len(self) >= self.n:
            self.mark()
            os._exit(1)
