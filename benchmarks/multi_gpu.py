"""Data-parallel capture scaling: one replica per GPU (Qwen2-Audio-7B shapes, RANDOM WEIGHTS).

    python benchmarks/multi_gpu.py --devices 2 --out DIR      (--smoke-cpu: 2 CPU processes, tiny model)

Times the single-process capture on one device and the same examples over N devices (whole batches dealt
round-robin, caches merged), and checks that the merged cache equals the single-process cache."""

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=2)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench-out")))
    ap.add_argument("--smoke-cpu", action="store_true")
    ap.add_argument("--repeat-check", action="store_true", help="capture twice on one replica and compare")
    a = ap.parse_args()
    from steer_audio.capture.parallel import run_capture_parallel
    from steer_audio.capture.run import STAT_KEYS, all_candidate_ids, cache_key, run_capture
    from steer_audio.models import loaded

    cpu = a.smoke_cpu
    name, dtype = ("tiny", None) if cpu else ("qwen2-audio-7b-random", "bfloat16")
    devs = ["cpu"] * a.devices if cpu else [f"cuda:{i}" for i in range(a.devices)]
    n = 32 if cpu else a.n
    exs, _ = examples(n, [2.0 if cpu else 10.0], seed=5)
    m = loaded.load(name, device=devs[0], dtype=dtype)
    warm = examples(a.batch_size, [2.0 if cpu else 10.0], seed=6)[0]
    run_capture(m, warm, a.out / "warm", batch_size=a.batch_size, data_sha="w")
    if not cpu:
        torch.cuda.synchronize()
    t = time.perf_counter()
    st1: dict = {}
    one = run_capture(m, exs, a.out / "one", batch_size=a.batch_size, data_sha="b", stats=st1)
    if not cpu:
        torch.cuda.synchronize()
    t_one = time.perf_counter() - t
    ends = st1["batch_end"]
    # steady state, measured the same way for one and N processes: first batch end -> last batch end
    one_steady = (len(exs) - a.batch_size) / (ends[-1] - ends[0])
    again_equal = None
    if a.repeat_check:  # the same capture again on the same replica: is the single-process run repeatable?
        again = run_capture(m, exs, a.out / "again", batch_size=a.batch_size, data_sha="b")
        d0, d0b = one.load([e.id for e in exs]), again.load([e.id for e in exs])
        again_equal = {k: torch.equal(d0[k], d0b[k]) for k in d0.t}
        print(
            f"[RANDOM WEIGHTS] single-process capture repeated on the same replica, equal per key: {again_equal}"
        )
    del m
    if not cpu:
        torch.cuda.empty_cache()
    # the key and candidate tokens need no weights: a meta skeleton of the same spec
    lm = loaded.load(name, device=devs[0], dtype=dtype, remote=True)
    key = cache_key(lm, "b", "silence", 0)
    t = time.perf_counter()
    par = run_capture_parallel(
        {"name": name, "dtype": dtype},
        devs,
        exs,
        a.out / "par",
        key,
        all_candidate_ids(lm, exs),
        batch_size=a.batch_size,
        data_sha="b",
    )
    t_par = time.perf_counter() - t
    timings = [json.loads(p.read_text()) for p in sorted((a.out / "par").glob("timing-worker-*.json"))]
    worst = max(tm["capture_s"] for tm in timings)
    # steady state of N replicas: while all of them run (after every worker's cold first batch, until the
    # first worker ends), the batches finished per second by all workers together
    lo = max(tm["first_batch_end"] for tm in timings)
    hi = min(tm["last_batch_end"] for tm in timings)
    done = sum(1 for tm in timings for e in tm["batch_end"] if lo < e <= hi)
    if hi <= lo or not done:
        raise SystemExit("the workers never ran at the same time: use more examples (--n)")
    par_steady = done * a.batch_size / (hi - lo)
    ids = [e.id for e in exs]
    d1, d2 = one.load(ids), par.load(ids)
    equal = all(torch.equal(d1[k], d2[k]) for k in d1.t)
    differ = {
        k: {
            "rows": int((d1[k] != d2[k]).reshape(len(ids), -1).any(-1).sum()),
            "max_abs": float((d1[k].float() - d2[k].float()).abs().nan_to_num().max()),
        }
        for k in d1.t
        if not torch.equal(d1[k], d2[k])
    }
    res = {
        "note": "RANDOM WEIGHTS (speed only)",
        "card": "cpu" if cpu else torch.cuda.get_device_name(0),
        "devices": a.devices,
        "examples": n,
        "batch_size": a.batch_size,
        "single_capture_s": t_one,
        "single_pairs_per_s": n / t_one,
        "single_pairs_per_s_steady": one_steady,
        "single_time_split_s": {k: st1[k] for k in STAT_KEYS},
        "parallel_wall_s_incl_spawn_and_load": t_par,
        "parallel_workers": timings,
        "parallel_capture_s_slowest_worker": worst,
        "parallel_pairs_per_s_incl_cold_start": n / worst,
        "speedup_incl_cold_start": t_one / worst,
        "parallel_pairs_per_s_steady": par_steady,
        "steady_window_s": hi - lo,
        "steady_window_batches": done,
        "speedup_steady": par_steady / one_steady,
        "speedup_wall": t_one / t_par,
        "merged_equals_single": equal,
        "merged_differs": differ,
        "single_repeat_equal": again_equal,
    }
    (a.out / "multi_gpu.json").write_text(json.dumps(res, indent=2))
    print(
        f"[RANDOM WEIGHTS] {res['card']} x{a.devices}: single {n / t_one:.1f} pairs/s "
        f"(steady {one_steady:.1f}); parallel steady {par_steady:.1f} pairs/s ({par_steady / one_steady:.2f}x); "
        f"incl. each worker's cold first batch {n / worst:.1f} pairs/s ({t_one / worst:.2f}x); wall incl. "
        f"spawn+load {t_par:.1f} s ({t_one / t_par:.2f}x); merged cache == single-process cache: {equal} {differ or ''}",
        flush=True,
    )


if __name__ == "__main__":
    main()
