"""Data-parallel capture on Ray (capture/ray_backend.py): one replica per GPU (Qwen2-Audio-7B shapes, RANDOM
WEIGHTS) against the single-process capture of the same examples on one GPU, in the same run.

    python benchmarks/ray_capture.py --devices N --out DIR            (GPU host: local Ray with N GPUs)
    python benchmarks/ray_capture.py --devices N --kill-shard 1 ...   (that shard's replica dies once, mid-shard)
    python benchmarks/ray_capture.py --smoke-cpu --out DIR            (2 CPU replicas, tiny model; run it in a
                                                                       loopback-only netns, see scripts/test_ray.sh)

Prints and writes (ray_capture.json) the single-process and Ray throughputs (steady state: while every replica
runs, after each one's cold first batch), the wall time including Ray's start and the model loads, and whether
the merged cache equals the single-process cache file for file."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_throughput import examples  # noqa: E402


def _files(d: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in sorted(d.iterdir())
        if p.name == "capture_index.json" or p.suffix == ".safetensors"
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=2)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--shard-batches", type=int, default=None, help="batches per shard (default: ~4/replica)")
    ap.add_argument("--kill-shard", type=int, default=None, help="this shard's replica exits after 1 batch")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench-out")))
    ap.add_argument("--smoke-cpu", action="store_true")
    a = ap.parse_args()
    from steer_audio.capture.ray_backend import RAY_TIMING, Fault, run_capture_ray
    from steer_audio.capture.run import STAT_KEYS, all_candidate_ids, cache_key, run_capture
    from steer_audio.models import loaded

    cpu = a.smoke_cpu
    name, dtype = ("tiny", None) if cpu else ("qwen2-audio-7b-random", "bfloat16")
    dev0 = "cpu" if cpu else "cuda:0"
    devs = ["cpu"] * a.devices if cpu else [f"cuda:{i}" for i in range(a.devices)]
    n = 32 if cpu else a.n
    dur = 2.0 if cpu else 10.0
    exs, _ = examples(n, [dur], seed=5)
    m = loaded.load(name, device=dev0, dtype=dtype)
    run_capture(
        m, examples(a.batch_size, [dur], seed=6)[0], a.out / "warm", batch_size=a.batch_size, data_sha="w"
    )
    if not cpu:
        torch.cuda.synchronize()
    st1: dict = {}
    t = time.perf_counter()
    run_capture(m, exs, a.out / "one", batch_size=a.batch_size, data_sha="b", stats=st1)
    if not cpu:
        torch.cuda.synchronize()
    t_one = time.perf_counter() - t
    ends = st1["batch_end"]
    one_steady = (len(exs) - a.batch_size) / (ends[-1] - ends[0])
    del m
    if not cpu:
        torch.cuda.empty_cache()

    lm = loaded.load(name, device=dev0, dtype=dtype, remote=True)  # weightless: key and candidate ids only
    key = cache_key(lm, "b", "silence", 0)
    fault = Fault(shard=a.kill_shard, after_batches=1) if a.kill_shard is not None else None
    t = time.perf_counter()
    run_capture_ray(
        {"name": name, "dtype": dtype},
        devs,
        exs,
        a.out / "ray",
        key,
        all_candidate_ids(lm, exs),
        shard_batches=a.shard_batches,
        fault=fault,
        batch_size=a.batch_size,
        data_sha="b",
    )
    t_ray = time.perf_counter() - t
    timing = json.loads((a.out / "ray" / RAY_TIMING).read_text())
    # batch end times per replica process (the last attempt of each shard ran there)
    per_pid: dict[int, list[float]] = {}
    for r in timing["ran"].values():
        per_pid.setdefault(r["attempts"][-1]["pid"], []).extend(r["batch_end"])
    per_pid = {p: v for p, v in per_pid.items() if v}  # a replica restarted after the last batch has none
    lo = max(min(v) for v in per_pid.values())
    hi = min(max(v) for v in per_pid.values())
    done = sum(1 for v in per_pid.values() for e in v if lo < e <= hi)
    together = len(per_pid) == a.devices and hi > lo and done > 0
    if not together and a.kill_shard is None:
        raise SystemExit("the replicas never ran at the same time: use more examples (--n)")
    ray_steady = done * a.batch_size / (hi - lo) if together else None
    f1, f2 = _files(a.out / "one"), _files(a.out / "ray")
    equal = sorted(f1) == sorted(f2) and all(f1[k] == f2[k] for k in f1)
    res = {
        "note": "RANDOM WEIGHTS (speed only)",
        "card": "cpu" if cpu else torch.cuda.get_device_name(0),
        "devices": a.devices,
        "examples": n,
        "clip_s": dur,
        "batch_size": a.batch_size,
        "shards": timing["shards"],
        "kill_shard": a.kill_shard,
        "attempts_per_shard": {s: len(r["attempts"]) for s, r in timing["ran"].items()},
        "single_capture_s": t_one,
        "single_pairs_per_s": n / t_one,
        "single_pairs_per_s_steady": one_steady,
        "single_time_split_s": {k: st1[k] for k in STAT_KEYS},
        "ray_wall_s_incl_start_and_load": t_ray,
        "ray_pairs_per_s_steady": ray_steady,
        "steady_window_s": hi - lo if together else None,
        "steady_window_batches": done if together else None,
        "speedup_steady": ray_steady / one_steady if ray_steady else None,
        "speedup_wall": t_one / t_ray,
        "merged_equals_single_file_for_file": equal,
        "files_differ": sorted(k for k in f1 if f1.get(k) != f2.get(k)),
    }
    (a.out / "ray_capture.json").write_text(json.dumps(res, indent=2))
    steady = f"{ray_steady:.1f} pairs/s ({ray_steady / one_steady:.2f}x" if ray_steady else "n/a (no window"
    print(
        f"[RANDOM WEIGHTS] {res['card']} x{a.devices} on Ray: single {n / t_one:.1f} pairs/s (steady "
        f"{one_steady:.1f}); Ray steady {steady}, target >= {0.9 * a.devices:.1f}x); wall incl. Ray start + "
        f"loads {t_ray:.1f} s ({t_one / t_ray:.2f}x); attempts per shard {res['attempts_per_shard']}; merged "
        f"cache == single-process cache file for file: {equal} {res['files_differ'] or ''}",
        flush=True,
    )


if __name__ == "__main__":
    main()
