"""Where an end-to-end `run_capture` loses time against its GPU work (issue 18), at 7B scale (RANDOM WEIGHTS).

    python benchmarks/capture_timeline.py --out DIR [--levers a,b] [--pairs 512] [--cpu-smoke]

For each lever set (`--levers` names one set; `--sets` several, `;`-separated) and each preparation mode:
  thread  run_capture as it is (batch k+1 prepared by the worker thread while batch k is launched);
  ahead   every batch prepared before the clock starts (run_capture's `prepare_batch` served from memory): what
          the preparing thread's share of the host costs the pipeline;
the script times the run and, per batch, puts a CUDA event on the stream right before the batch's first launch
and right after its last, plus host clocks around the prepare, the launch (trace_batch) and the rest. From the
events: the GPU span of each batch (first to last launch executed, including any wait for the host inside it) and
the gap between consecutive batches (the GPU waiting for the next batch's first launch). Writes DIR/timeline.json
and DIR/timeline.md. Speed only: the weights are random.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_throughput import build_model, card, examples, log  # noqa: E402


def med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def one_run(m, exs, out: Path, bs: int, mode: str, cuda: bool) -> dict:
    from steer_audio.capture import run as run_mod
    from steer_audio.capture.prepare import prep_spec

    orig_prep, orig_trace = run_mod.prepare_batch, run_mod.trace_batch
    host: dict[str, list] = {"prep": [], "trace": []}
    events: list[tuple[object, object]] = []
    ready: dict[tuple[str, ...], object] = {}
    if mode == "ahead":
        spec = prep_spec(m, "silence", strict=False, seed=0)
        order = run_mod.capture_order(exs)
        for i in range(0, len(order), bs):
            chunk = order[i : i + bs]
            ready[tuple(e.id for e in chunk)] = orig_prep(m.processor, spec, chunk)

    def prep(processor, spec, chunk):
        t0 = time.perf_counter()
        got = ready.pop(tuple(e.id for e in chunk), None)
        r = got if got is not None else orig_prep(processor, spec, chunk)
        host["prep"].append((threading.get_ident(), t0, time.perf_counter()))
        return r

    def trace(mm, ev, b, ro=None, *a, **k):
        t0 = time.perf_counter()
        s = e = None
        if cuda:
            s = torch.cuda.Event(enable_timing=True)
            s.record()
        r = orig_trace(mm, ev, b, ro, *a, **k)
        if cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            events.append((s, e))
        host["trace"].append((t0, time.perf_counter()))
        return r

    run_mod.prepare_batch, run_mod.trace_batch = prep, trace
    st: dict = {}
    try:
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        run_mod.run_capture(m, exs, out, batch_size=bs, data_sha=f"t-{mode}-{out.name}", stats=st)
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    finally:
        run_mod.prepare_batch, run_mod.trace_batch = orig_prep, orig_trace
    span = [s.elapsed_time(e) for s, e in events] if cuda else []
    gaps = [events[i - 1][1].elapsed_time(events[i][0]) for i in range(1, len(events))] if cuda else []
    launch = [1e3 * (b - a) for a, b in host["trace"]]
    prep_ms = [1e3 * (b - a) for _, a, b in host["prep"]]
    n_b = len(host["trace"])
    return {
        "mode": mode,
        "pairs": len(exs),
        "batches": n_b,
        "wall_s": wall,
        "pairs_per_s": len(exs) / wall,
        "ms_per_batch": 1e3 * wall / max(n_b, 1),
        "split_s": {k: v for k, v in st.items() if k != "batch_end"},
        "median_ms": {
            "gpu_span": med(span[1:]),
            "gpu_gap": med(gaps[1:]),
            "host_launch": med(launch[1:]),
            "prepare": med(prep_ms[1:]),
        },
        "sum_ms": {"gpu_span": sum(span), "gpu_gap": sum(gaps)},
        "per_batch_ms": {"gpu_span": span, "gpu_gap": gaps, "host_launch": launch, "prepare": prep_ms},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument(
        "--sets", default="no_sync,liger,encoder_graph,clip_features", help="';'-separated lever sets"
    )
    ap.add_argument("--modes", default="thread,ahead")
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--cpu-smoke", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cuda = not args.cpu_smoke

    from steer_audio.capture import fast

    m = build_model(cuda)
    dur = 10.0 if cuda else 2.0
    n = args.pairs if cuda else 32
    exs, _ = examples(n, [dur], seed=21)
    warm, _ = examples(2 * args.batch, [dur], seed=22)
    scratch = args.out / "scratch"
    res: dict = {"note": "RANDOM WEIGHTS: speed only", "card": card(cuda), "rows": []}
    for k, sset in enumerate(args.sets.split(";")):
        names = [x for x in sset.split(",") if x and x != "none"]
        lv = fast.Levers(**dict(x.split("=", 1) if "=" in x else (x, True) for x in names))
        with fast.install(m, lv):
            for mode in args.modes.split(","):
                one_run(m, warm, scratch / f"w{k}{mode}", args.batch, "thread", cuda)
                row = one_run(m, exs, scratch / f"r{k}{mode}", args.batch, mode, cuda)
                row["levers"] = lv.describe()
                res["rows"].append(row)
                log(
                    f"[{sset} | {mode}] {row['pairs_per_s']:.1f} pairs/s, {row['ms_per_batch']:.1f} ms/batch; "
                    f"medians {row['median_ms']}; split {row['split_s']}"
                )
                (args.out / "timeline.json").write_text(json.dumps(res, indent=1, default=str))
    md = [
        "# End-to-end capture: GPU span and gaps per batch (RANDOM WEIGHTS: speed only)",
        "",
        f"Card: {res['card']}. {n} pairs of {dur:.0f} s, batch {args.batch}.",
        "",
        "| levers | prepare | pairs/s | ms/batch | GPU span | GPU gap | host launch | prepare ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        on = (
            "+".join(
                k if v is True else f"{k}={v}"
                for k, v in r["levers"].items()
                if v is True or (k == "features" and v != "device")
            )
            or "none"
        )
        mm = r["median_ms"]

        def f(x):
            return "" if x is None else f"{x:.1f}"

        md.append(
            f"| {on} | {r['mode']} | {r['pairs_per_s']:.1f} | {r['ms_per_batch']:.1f} | {f(mm['gpu_span'])} | "
            f"{f(mm['gpu_gap'])} | {f(mm['host_launch'])} | {f(mm['prepare'])} |"
        )
    md += [
        "",
        "Medians over batches 2..n (ms). GPU span: first to last launch of a batch as the GPU ran them.",
    ]
    (args.out / "timeline.md").write_text("\n".join(md) + "\n")
    print("\n".join(md), flush=True)
    import shutil

    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
