"""Where one capture batch's GPU time goes (issue 18), at 7B scale (Qwen2-Audio-7B shapes, RANDOM WEIGHTS).

    python benchmarks/capture_profile.py --out DIR [--levers no_sync,liger] [--batch 16] [--cpu-smoke]

One 10 s batch (audio + silence rows), timed four ways with CUDA events (median of --reps):
  encode   `m.model_inputs` alone (clip-length encoder + projector + embedding scatter)
  forward  the bare decoder forward on those inputs_embeds (no nnsight, logits of the last position only)
  trace0   an nnsight trace of the same forward reading only the last-position logits
  capture  `capture_trace` (every read the capture stage makes)
then the host's own cost of each step (`host`: the same calls on one pair, where the GPU work is a few ms, so the
wall time is the host launching ~the same number of kernels; and `prepare_batch` of a whole batch, the work of
run_capture's preparing thread), then one torch.profiler pass over encode + capture: the kernels by GPU time (grouped: GEMM, attention,
elementwise, copy, memset, reduction, other), the GPU-busy fraction of the wall time, and the aten ops with
their input shapes. Writes DIR/capture_profile.{json,md} and DIR/capture_profile_trace.json.gz (chrome trace).
Speed only: the weights are random.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_throughput import build_model, card, examples, lm_flops, log  # noqa: E402

KERNEL_GROUPS = (
    ("gemm", r"nvjet|gemm|cutlass|sm90_xmma|ampere_.*gemm|cublas|splitk|matmul"),
    ("attention", r"fmha|flash|attention|efficient|sdpa"),
    ("memset", r"memset"),
    ("copy", r"copy|memcpy|cat|direct_copy|contiguous"),
    ("reduction", r"reduce|softmax|norm|sum|mean"),
    ("elementwise", r"elementwise|vectorized|triton|liger|silu|mul|add|rotary|rope"),
)


def group_of(name: str) -> str:
    low = name.lower()
    for g, pat in KERNEL_GROUPS:
        if re.search(pat, low):
            return g
    return "other"


def timed(fn, reps: int, cuda: bool) -> float:
    """Median seconds of `fn()` (CUDA events on the GPU, wall time on the CPU)."""
    out = []
    for _ in range(reps):
        if cuda:
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            s.record()
            fn()
            e.record()
            torch.cuda.synchronize()
            out.append(s.elapsed_time(e) / 1e3)
        else:
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return statistics.median(out)


def host_costs(m, ev, exs, wavs, negs, reps: int, cuda: bool) -> dict[str, float]:
    """Wall seconds of the host's work per batch: encode and capture_trace on ONE pair (same kernel launches, a few
    ms of GPU work, so this is what launching costs the host), and prepare_batch of the whole batch (the
    preparing thread: audio, negatives, tokens, features)."""
    from steer_audio.capture.inputs import encode
    from steer_audio.capture.prepare import prep_spec, prepare_batch
    from steer_audio.capture.trace import capture_trace

    one = encode(m.processor, exs[:1], wavs[:1], negs[:1], m.prompt, m.geom.audio_token_id)
    mask_d, cand_d = one.audio_mask.to(m.device), one.cand.to(m.device)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def wall(fn) -> float:
        out = []
        for _ in range(reps + 1):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            out.append(time.perf_counter() - t0)
        return statistics.median(out[1:])

    inp = m.model_inputs(one.model_inputs, one.row_keys)
    spec = prep_spec(m, "silence", strict=False, seed=0)
    return {
        "encode_1_pair": wall(lambda: m.model_inputs(one.model_inputs, one.row_keys)),
        "capture_1_pair": wall(lambda: capture_trace(m.lm, ev, m.geom, inp, mask_d, cand_d)),
        "prepare_batch": wall(lambda: prepare_batch(m.processor, spec, exs)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--levers", default="no_sync,liger", help="comma list of capture/fast.py levers, or none")
    ap.add_argument("--batch", type=int, default=16, help="pairs per batch")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--cpu-smoke", action="store_true", help="the tiny CPU model (checks the script only)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cuda = not args.cpu_smoke

    from steer_audio.capture import fast
    from steer_audio.capture.inputs import encode
    from steer_audio.capture.trace import capture_trace, envoys

    res: dict = {"note": "RANDOM WEIGHTS: speed only", "card": card(cuda), "batch_pairs": args.batch}
    m = build_model(cuda)
    names = [x for x in args.levers.split(",") if x and x != "none"]
    lv = fast.Levers(**{k: True for k in names})
    res["levers"] = lv.describe()
    ev = envoys(m.lm, m.arch, m.geom, m.name)
    exs, wavs = examples(args.batch, [args.seconds if cuda else 2.0], seed=11)
    negs = [np.zeros_like(w) for w in wavs]
    b = encode(m.processor, exs, wavs, negs, m.prompt, m.geom.audio_token_id)
    dev = m.device
    module = m.lm._module
    lm_params = sum(p.numel() for n, p in module.model.language_model.named_parameters() if "embed" not in n)
    n_rows, s_len = b.model_inputs["input_ids"].shape
    res["rows"], res["seq_len"] = n_rows, s_len
    res["decoder_tflop_per_batch"] = n_rows * lm_flops(m.geom, s_len, lm_params) / 1e12
    log(f"batch: {args.batch} pairs = {n_rows} rows x {s_len} tokens; levers {lv.describe()}")

    with fast.install(m, lv):
        mask_d, cand_d = b.audio_mask.to(dev), b.cand.to(dev)
        inp = m.model_inputs(b.model_inputs, b.row_keys)
        lm_inner = module.model.language_model
        head = module.lm_head

        def run_encode():
            return m.model_inputs(b.model_inputs, b.row_keys)

        @torch.no_grad()
        def run_forward():
            h = lm_inner(
                inputs_embeds=inp["inputs_embeds"], attention_mask=inp["attention_mask"], use_cache=False
            ).last_hidden_state
            return head(h[:, -1])

        def run_trace0():
            with m.lm.trace(**inp, use_cache=False):
                out = m.lm.output.logits[:, -1].save()
            return out

        def run_capture_trace():
            return capture_trace(m.lm, ev, m.geom, inp, mask_d, cand_d)

        steps = {
            "encode": run_encode,
            "forward": run_forward,
            "trace0": run_trace0,
            "capture": run_capture_trace,
        }
        for fn in steps.values():  # warm-up (liger's Triton compiles, cuBLAS heuristics)
            fn()
        t = {k: timed(fn, args.reps, cuda) for k, fn in steps.items()}
        res["seconds"] = t
        res["pairs_per_s"] = {
            "forward_only": args.batch / t["forward"],
            "encode_plus_forward": args.batch / (t["encode"] + t["forward"]),
            "encode_plus_capture": args.batch / (t["encode"] + t["capture"]),
        }
        res["decoder_tflops_in_forward"] = res["decoder_tflop_per_batch"] / t["forward"]
        for k, v in t.items():
            log(f"{k:8s} {1e3 * v:8.1f} ms")
        res["host_seconds"] = host_costs(m, ev, exs, wavs, negs, args.reps, cuda)
        for k, v in res["host_seconds"].items():
            log(f"host {k:18s} {1e3 * v:8.1f} ms")
        log(f"pairs/s: {res['pairs_per_s']}; forward at {res['decoder_tflops_in_forward']:.0f} TFLOP/s")

        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        w0 = time.perf_counter()
        with profile(activities=acts, record_shapes=True) as prof:
            run_encode()
            run_capture_trace()
            if cuda:
                torch.cuda.synchronize()
        wall = time.perf_counter() - w0

    trace_path = args.out / "capture_profile_trace.json"
    prof.export_chrome_trace(str(trace_path))
    with open(trace_path, "rb") as f, gzip.open(str(trace_path) + ".gz", "wb") as g:
        shutil.copyfileobj(f, g)
    trace_path.unlink()
    kernels: dict[str, list[float]] = {}
    for e in prof.events():
        dt = getattr(e, "device_type", None)
        if cuda and dt is not None and "CUDA" in str(dt) and e.device_time_total > 0:
            kernels.setdefault(e.name, []).append(e.device_time_total / 1e6)
    busy = sum(sum(v) for v in kernels.values())
    groups: dict[str, float] = {}
    for name, v in kernels.items():
        groups[group_of(name)] = groups.get(group_of(name), 0.0) + sum(v)
    top = sorted(kernels.items(), key=lambda kv: -sum(kv[1]))[:30]
    res["profile"] = {
        "wall_s": wall,
        "gpu_busy_s": busy,
        "gpu_busy_fraction": busy / wall if wall else None,
        "groups_s": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
        "kernel_launches": sum(len(v) for v in kernels.values()),
        "top_kernels": [{"name": n[:120], "calls": len(v), "s": sum(v)} for n, v in top],
    }
    table = prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total",
        row_limit=40,
        max_name_column_width=50,
    )
    (args.out / "capture_profile_ops.txt").write_text(table)
    (args.out / "capture_profile.json").write_text(json.dumps(res, indent=2, default=str))
    md = [
        "# One capture batch, where the GPU time goes (RANDOM WEIGHTS: speed only)",
        "",
        f"Card: {res['card']}. Levers {res['levers']}. {args.batch} pairs = {n_rows} rows x {s_len} tokens.",
        "",
        "| step | ms |",
        "|---|---|",
        *[f"| {k} | {1e3 * v:.1f} |" for k, v in t.items()],
        "",
        "Host cost (wall, synchronised; one pair = the same launches with little GPU work):",
        "",
        "| host step | ms |",
        "|---|---|",
        *[f"| {k} | {1e3 * v:.1f} |" for k, v in res["host_seconds"].items()],
        "",
        f"Profiled encode + capture: wall {1e3 * wall:.1f} ms, GPU busy {1e3 * busy:.1f} ms, "
        f"{res['profile']['kernel_launches']} kernels.",
        "",
        "| kernel group | ms | share of busy |",
        "|---|---|---|",
        *[
            f"| {g} | {1e3 * s:.1f} | {100 * s / max(busy, 1e-12):.0f} % |"
            for g, s in res["profile"]["groups_s"].items()
        ],
        "",
        "| kernel | calls | ms |",
        "|---|---|---|",
        *[
            f"| `{k['name'][:90]}` | {k['calls']} | {1e3 * k['s']:.2f} |"
            for k in res["profile"]["top_kernels"]
        ],
    ]
    (args.out / "capture_profile.md").write_text("\n".join(md) + "\n")
    print("\n".join(md), flush=True)
    print(table[:6000], flush=True)


if __name__ == "__main__":
    main()
