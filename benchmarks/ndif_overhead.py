"""What remote execution on a self-hosted NDIF costs: remote vs local, on any registry model and device.

Measures, in one run:
  * cold deploy (with --start): deploy/ndif/start.sh until the API is connected, then the first request (the
    server builds the model from its offline key, unless NDIF_DEPLOYMENTS pinned it at start);
  * per-request overhead: a minimal trace (logits of one row) remote minus local, medians of warm requests;
  * examples/s remote vs local for the two trace kinds the toolkit runs, at --batch-size examples per trace
    (each an audio and a silence row): the toolkit's capture trace (`capture.trace.capture_trace`: every
    layer's residual and per-head o_proj input at the last position, per-head audio masses, candidate logits)
    and a steering forward (`steer.forward.forward_logits`: additions at t on o_proj inputs and the last layer);
  * the payload of one request of each kind: the serialised request (what the client POSTs) and the result
    as received, in bytes, and the saved tensors' shapes (only last-position vectors and [L, H] masses);
  * whether the remote outputs equal the local ones (bit for bit, or the largest difference).

Run as root; it starts its own stack in its own loopback-only namespace and stops it afterwards:
    .venv/bin/python benchmarks/ndif_overhead.py --start                  (tiny model, CPU)
    .venv/bin/python benchmarks/ndif_overhead.py --start --no-netns       (no namespace; listeners on 127.0.0.1)
or against a running server (from inside its namespace, if it has one):
    python3 benchmarks/ndif_overhead.py --url http://127.0.0.1:8001 --model qwen2-audio-7b-random \
        --device cuda --batch-size 16 --json out.json
Prints a Markdown report on stdout; --json also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy" / "ndif"
BENCH_NETNS = "steeraudio-ndif-bench"
BENCH_STATE = "/tmp/steeraudio-ndif-bench"


def _in_netns(name: str) -> bool:
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat(f"/run/netns/{name}").st_ino
    except FileNotFoundError:
        return False


def _reexec_in_netns(argv: list[str]) -> None:
    if (
        subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
        .stdout.split()
        .count(BENCH_NETNS)
        == 0
    ):
        subprocess.run(["ip", "netns", "add", BENCH_NETNS], check=True)
    subprocess.run(["ip", "netns", "exec", BENCH_NETNS, "ip", "link", "set", "lo", "up"], check=True)
    try:
        rc = subprocess.run(["ip", "netns", "exec", BENCH_NETNS, sys.executable, __file__, *argv]).returncode
    finally:
        subprocess.run(["ip", "netns", "del", BENCH_NETNS], check=False)
    sys.exit(rc)


class Payload:
    """Counts the bytes of the last request nnsight serialised and of the last result it received."""

    def __init__(self) -> None:
        from nnsight.intervention.backends.remote import RemoteBackend

        self.request = self.result = 0
        ser, fin = RemoteBackend._serialize, RemoteBackend.finalize
        me = self

        def _serialize(backend, tracer):
            blob = ser(backend, tracer)
            me.request = len(blob)
            return blob

        def finalize(backend, content):
            me.result = len(content)
            return fin(backend, content)

        RemoteBackend._serialize, RemoteBackend.finalize = _serialize, finalize


def _logits_only(lm, lm_head, inputs, remote):
    with lm.trace(**inputs, use_cache=False, remote=remote):
        out = lm_head.output[:, -1].save()
    return out.cpu()


def _median_s(fn, reps: int) -> tuple[float, float]:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def _diff(a, b) -> dict:
    """Equality of two tensors or dicts of tensors: bit for bit, else the largest |a - b| (relative to max |a|)."""
    import torch

    if not isinstance(a, dict):
        a, b = {"out": a}, {"out": b}
    worst = {"bit_identical": True, "max_abs_diff": 0.0, "max_rel_diff": 0.0}
    for k in a:
        x, y = a[k].cpu(), b[k].cpu()
        if torch.equal(x, y):
            continue
        worst["bit_identical"] = False
        d = (x.float() - y.float()).abs().max().item()
        r = d / max(x.float().abs().max().item(), 1e-30)
        worst["max_abs_diff"] = max(worst["max_abs_diff"], d)
        worst["max_rel_diff"] = max(worst["max_rel_diff"], r)
    return worst


def _shapes(out) -> dict:
    return {
        k: [list(v.shape), str(v.dtype).replace("torch.", ""), v.numel() * v.element_size()]
        for k, v in out.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--start", action="store_true", help="start (and afterwards stop) a stack of our own (cpu profile)"
    )
    ap.add_argument(
        "--no-netns", action="store_true", help="with --start: no network namespace (NDIF_NETNS='')"
    )
    ap.add_argument(
        "--url", default=None, help="an already running server (run this inside its netns, if any)"
    )
    ap.add_argument("--model", default="tiny", help="registry name (the server must serve the same key)")
    ap.add_argument("--device", default="cpu", help="the local run's device: cpu | cuda | cuda:N")
    ap.add_argument("--dtype", default=None, help="float32 | bfloat16 (default: bf16 on GPU, fp32 on CPU)")
    ap.add_argument("--examples", type=int, default=32, help="examples for the examples/s measurement")
    ap.add_argument("--batch-size", type=int, default=8, help="examples per trace (2 rows each)")
    ap.add_argument("--reps", type=int, default=15, help="warm repetitions for the per-request overhead")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    if not args.start and not args.url:
        ap.error("give --start or --url")
    if args.start and not args.no_netns and not _in_netns(BENCH_NETNS):
        _reexec_in_netns(sys.argv[1:])

    import torch

    on_gpu = args.device.startswith("cuda")
    if not on_gpu:
        torch.set_num_threads(1)
    from steer_audio.capture.inputs import encode
    from steer_audio.capture.trace import capture_trace, envoys
    from steer_audio.data import mmau
    from steer_audio.data.audio import load_audio, negative
    from steer_audio.data.demo import write_demo
    from steer_audio.models import loaded
    from steer_audio.remote import configure, resolve_remote, wait_until_ready
    from steer_audio.steer import forward

    def sync():
        if on_gpu:
            torch.cuda.synchronize()

    rows: list[tuple[str, str]] = []
    res: dict = {"model": args.model, "device": args.device, "batch_size": args.batch_size}
    load_before = os.getloadavg()
    env = {
        **os.environ,
        "NDIF_NETNS": "" if args.no_netns else BENCH_NETNS,
        "NDIF_STATE_DIR": BENCH_STATE,
        "NDIF_PROFILE": "cpu",
    }
    started = False
    payload = Payload()
    try:
        if args.start:
            t0 = time.perf_counter()
            proc = subprocess.run([str(DEPLOY / "start.sh")], env=env, capture_output=True, text=True)
            started = True
            if proc.returncode != 0:
                sys.exit(f"start.sh failed:\n{proc.stderr[-3000:]}")
            t_stack = time.perf_counter() - t0
            url = proc.stdout.strip().splitlines()[-1]
            res["stack_start_s"] = t_stack
            rows.append(
                (
                    "stack start (start.sh: redis, S3, Ray, controller, API until /connected)",
                    f"{t_stack:.1f} s",
                )
            )
        else:
            url = args.url
        target = resolve_remote(url, environ={})
        configure(target)
        wait_until_ready(target, timeout=120)

        t0 = time.perf_counter()
        kw = {"device": args.device, "dtype": args.dtype, "audio_encoder": "full-window"}
        local = loaded.load(args.model, **kw)
        sync()
        res["local_build_s"] = time.perf_counter() - t0
        remote = loaded.load(args.model, **kw, remote=target.trace_arg)
        with tempfile.TemporaryDirectory() as tmp:
            exs = mmau.load(write_demo(Path(tmp) / "demo", n=max(args.examples, 8))).examples[: args.examples]
            batches = []
            for i in range(0, len(exs), args.batch_size):
                chunk = exs[i : i + args.batch_size]
                wavs = [load_audio(e.audio_path) for e in chunk]
                negs = [negative(w, "silence", seed=0) for w in wavs]
                batches.append(
                    encode(local.processor, chunk, wavs, negs, local.prompt, local.geom.audio_token_id)
                )
        res["tokens_per_row"] = int(batches[0].model_inputs["input_ids"].shape[1])

        ev_l = envoys(local.lm, local.arch, local.geom, local.name)
        ev_r = envoys(remote.lm, remote.arch, remote.geom, remote.name)
        # local inputs on the model's device (floating ones in its dtype); remote inputs stay on the CPU
        li = [local.inputs_to_device(b.model_inputs) for b in batches]
        ri = [remote.inputs_to_device(b.model_inputs) for b in batches]
        # clone: a slice would serialise its whole batch's storage into the request
        one_l = {k: v[:1].clone() for k, v in li[0].items()}
        one_r = {k: v[:1].clone() for k, v in ri[0].items()}

        t0 = time.perf_counter()
        first = _logits_only(remote.lm, ev_r.lm_head, one_r, url)
        t_first = time.perf_counter() - t0
        res["first_request_s"] = t_first
        what = "first request (cold deploy unless NDIF_DEPLOYMENTS pinned the model)"
        rows.append((what, f"{t_first:.1f} s"))
        res["minimal_trace_equal"] = _diff(_logits_only(local.lm, ev_l.lm_head, one_l, False), first)

        def loc_min():
            _logits_only(local.lm, ev_l.lm_head, one_l, False)
            sync()

        loc, loc_m = _median_s(loc_min, args.reps)
        rem, rem_m = _median_s(lambda: _logits_only(remote.lm, ev_r.lm_head, one_r, url), args.reps)
        res["minimal_payload_bytes"] = {"request": payload.request, "result": payload.result}
        res["minimal_local_s"], res["minimal_remote_s"] = loc, rem
        res["per_request_overhead_s"] = rem - loc
        rows.append(
            ("minimal trace (logits, 1 row), local: median / min", f"{1e3 * loc:.1f} / {1e3 * loc_m:.1f} ms")
        )
        rows.append(
            ("minimal trace (logits, 1 row), remote: median / min", f"{1e3 * rem:.1f} / {1e3 * rem_m:.1f} ms")
        )
        rows.append(("per-request overhead (remote - local, medians)", f"{1e3 * (rem - loc):.1f} ms"))

        g = torch.Generator().manual_seed(0)
        d = local.geom.n_heads * local.geom.head_dim
        adds = [
            ({1: torch.randn(b.cand.shape[0], d, generator=g)}, torch.randn(b.cand.shape[0], d, generator=g))
            for b in batches
        ]

        def run_capture(m, ev, inputs, r):
            outs = []
            with torch.no_grad():
                for b, x in zip(batches, inputs, strict=True):
                    dev = "cpu" if r else args.device
                    out = capture_trace(m.lm, ev, m.geom, x, b.audio_mask.to(dev), b.cand.to(dev), remote=r)
                    outs.append({k: v.cpu() for k, v in out.items()})
            return outs

        def run_steer(m, ev, inputs, r):
            outs = []
            with torch.no_grad():
                for b, x, (aa, fa) in zip(batches, inputs, adds, strict=True):
                    outs.append(forward.forward_logits(m.lm, ev, x, b.cand, aa, fa, remote=r))
            return outs

        n = len(exs)
        for key, label, fn_l, fn_r in (
            (
                "capture",
                "capture trace",
                lambda: run_capture(local, ev_l, li, False),
                lambda: run_capture(remote, ev_r, ri, url),
            ),
            (
                "steer",
                "steering forward",
                lambda: run_steer(local, ev_l, li, False),
                lambda: run_steer(remote, ev_r, ri, url),
            ),
        ):
            out_l, out_r = fn_l(), fn_r()  # warm; also the equality check and the payload of one request
            eq = [_diff(a, b) for a, b in zip(out_l, out_r, strict=True)]
            res[f"{key}_equal"] = {
                "bit_identical": all(e["bit_identical"] for e in eq),
                "max_abs_diff": max(e["max_abs_diff"] for e in eq),
                "max_rel_diff": max(e["max_rel_diff"] for e in eq),
            }
            res[f"{key}_payload_bytes"] = {"request": payload.request, "result": payload.result}
            if key == "capture":
                res["capture_saved"] = _shapes(out_r[-1])
            sync()
            tl, _ = _median_s(lambda fn=fn_l: (fn(), sync()), 3)
            tr, _ = _median_s(fn_r, 3)
            res[f"{key}_examples_per_s"] = {"local": n / tl, "remote": n / tr, "remote_time_ratio": tr / tl}
            rows.append(
                (
                    f"{label}: examples/s local vs remote ({n} examples, {len(batches)} traces of "
                    f"{args.batch_size} x (audio + silence))",
                    f"{n / tl:.1f} vs {n / tr:.1f} (remote {tr / tl:.2f}x the time)",
                )
            )
            pb = res[f"{key}_payload_bytes"]
            rows.append(
                (
                    f"{label}: payload of one request (batch {args.batch_size}): request / result",
                    f"{pb['request'] / 1e6:.2f} MB / {pb['result'] / 1e3:.1f} kB",
                )
            )
            e = res[f"{key}_equal"]
            rows.append(
                (
                    f"{label}: remote outputs vs local",
                    "bit-identical"
                    if e["bit_identical"]
                    else f"max |diff| {e['max_abs_diff']:.3g} (relative {e['max_rel_diff']:.3g})",
                )
            )
        saved = ", ".join(f"{k} {tuple(v[0])}" for k, v in res["capture_saved"].items())
        rows.append(("capture trace: what comes back per request (saved tensors)", saved))
    finally:
        if started:
            t0 = time.perf_counter()
            stop = [str(DEPLOY / "stop.sh")] + ([] if args.no_netns else ["--keep-netns"])
            subprocess.run(stop, env=env, capture_output=True, text=True)
            rows.append(("stop.sh", f"{time.perf_counter() - t0:.1f} s"))

    cpu = "unknown"
    try:
        cpu = next(x.split(":", 1)[1].strip() for x in open("/proc/cpuinfo") if x.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name() if on_gpu else "no GPU"
    la, lb = load_before, os.getloadavg()
    res["rows"] = rows
    res["machine"] = {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "gpu": gpu,
        "python": platform.python_version(),
        "load_before": la,
        "load_after": lb,
    }
    res["client"] = {p: version(p) for p in ("nnsight", "torch", "transformers")}
    print(f"NDIF remote vs local, model {args.model} ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    print(f"machine: {os.cpu_count()} CPU cores ({cpu}), {gpu}; Python {platform.python_version()}")
    print(
        f"load average (1, 5, 15 min) before: {la[0]:.1f} {la[1]:.1f} {la[2]:.1f}; after: {lb[0]:.1f} {lb[1]:.1f} {lb[2]:.1f}"
    )
    print(
        f"client: nnsight {version('nnsight')}, torch {version('torch')}, transformers {version('transformers')}, "
        f"local run on {args.device} ({local.dtype}); server: deploy/ndif (ndif 0.1.2, nnsight 0.8.0), all on loopback"
    )
    print()
    print("| measurement | value |")
    print("|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")
    if args.json:
        tmp = Path(args.json + ".tmp")
        tmp.write_text(json.dumps(res, indent=1, default=str) + "\n")
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
