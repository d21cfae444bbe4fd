"""What remote execution on a self-hosted NDIF costs, on the tiny model.

Measures, in one run:
  * cold deploy: deploy/ndif/start.sh until the API is connected, then the first request (which makes the
    server build the model from its offline key);
  * per-request overhead: a minimal trace (logits of one row) remote minus local, medians of warm requests;
  * examples/s remote vs local for the two trace kinds the toolkit runs: the capture trace (every layer's
    residual, per-head o_proj inputs and post-RoPE queries at t, candidate logits; audio + silence rows) and a
    steering forward (additions at t on o_proj inputs and the last layer).

Run as root; it starts its own stack in its own loopback-only namespace and stops it afterwards:
    .venv/bin/python benchmarks/ndif_overhead.py --start
or against a running server, from inside its namespace:
    ip netns exec steeraudio-ndif .venv/bin/python benchmarks/ndif_overhead.py --url http://127.0.0.1:8001
Prints a Markdown report on stdout.
"""

from __future__ import annotations

import argparse
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


def _capture(lm, attn, o_proj, layers, lm_head, rope_op, inputs, cand, remote):
    """The capture pattern (`.source` resolved inside the trace, so it also works remotely)."""
    import torch

    with lm.trace(**inputs, use_cache=False, remote=remote):
        q_last, z, resid = [], [], []
        for i in range(len(layers)):
            q, _k = getattr(attn[i].source, rope_op).output
            q_last.append(q[:, :, -1])
            z.append(o_proj[i].input[:, -1])
            resid.append(layers[i].output[:, -1])
        out = {
            "q": torch.stack(q_last, 1),
            "z": torch.stack(z, 1),
            "resid": torch.stack(resid, 1),
            "cand_logits": lm_head.output[:, -1].gather(1, cand),
        }
        out = out.save()
    return out


def _logits_only(lm, lm_head, inputs, remote):
    with lm.trace(**inputs, use_cache=False, remote=remote):
        out = lm_head.output[:, -1].save()
    return out


def _median_s(fn, reps: int) -> tuple[float, float]:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--start", action="store_true", help="start (and afterwards stop) a stack of our own")
    ap.add_argument("--url", default=None, help="an already running server (run this inside its netns)")
    ap.add_argument("--examples", type=int, default=32, help="examples for the examples/s measurement")
    ap.add_argument("--batch-size", type=int, default=8, help="examples per trace (2 rows each)")
    ap.add_argument("--reps", type=int, default=15, help="warm repetitions for the per-request overhead")
    args = ap.parse_args()
    if not args.start and not args.url:
        ap.error("give --start or --url")
    if args.start and not _in_netns(BENCH_NETNS):
        _reexec_in_netns(sys.argv[1:])

    import torch

    torch.set_num_threads(1)
    from steer_audio.capture.inputs import encode
    from steer_audio.capture.trace import envoys
    from steer_audio.data import mmau
    from steer_audio.data.audio import load_audio, negative
    from steer_audio.data.demo import write_demo
    from steer_audio.models import loaded
    from steer_audio.remote import configure, resolve_remote, wait_until_ready
    from steer_audio.steer import forward

    rows: list[tuple[str, str]] = []
    load_before = os.getloadavg()
    env = {**os.environ, "NDIF_NETNS": BENCH_NETNS, "NDIF_STATE_DIR": BENCH_STATE, "NDIF_PROFILE": "cpu"}
    started = False
    try:
        if args.start:
            t0 = time.perf_counter()
            proc = subprocess.run([str(DEPLOY / "start.sh")], env=env, capture_output=True, text=True)
            started = True
            if proc.returncode != 0:
                sys.exit(f"start.sh failed:\n{proc.stderr[-3000:]}")
            t_stack = time.perf_counter() - t0
            url = proc.stdout.strip().splitlines()[-1]
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

        local = loaded.load("tiny", device="cpu")
        remote = loaded.load("tiny", device="cpu", remote=target.trace_arg)
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

        def parts(m):
            lm = m.lm
            layers = [lm.model.language_model.layers[i] for i in range(m.geom.n_layers)]
            return (
                lm,
                [la.self_attn for la in layers],
                [la.self_attn.o_proj for la in layers],
                layers,
                lm.lm_head,
            )

        pl, pr = parts(local), parts(remote)
        one = {k: v[:1] for k, v in batches[0].model_inputs.items()}

        t0 = time.perf_counter()
        first = _logits_only(pr[0], pr[4], one, url)
        t_first = time.perf_counter() - t0
        what = (
            "first request after start (server builds the model: cold deploy)"
            if args.start
            else "first request"
        )
        rows.append((what, f"{t_first:.1f} s"))
        if not torch.equal(first, _logits_only(pl[0], pl[4], one, False)):
            sys.exit("remote logits differ from local")

        loc, loc_min = _median_s(lambda: _logits_only(pl[0], pl[4], one, False), args.reps)
        rem, rem_min = _median_s(lambda: _logits_only(pr[0], pr[4], one, url), args.reps)
        rows.append(
            (
                "minimal trace (logits, 1 row), local: median / min",
                f"{1e3 * loc:.1f} / {1e3 * loc_min:.1f} ms",
            )
        )
        rows.append(
            (
                "minimal trace (logits, 1 row), remote: median / min",
                f"{1e3 * rem:.1f} / {1e3 * rem_min:.1f} ms",
            )
        )
        rows.append(("per-request overhead (remote - local, medians)", f"{1e3 * (rem - loc):.1f} ms"))

        rope_op = local.arch.rope_op
        g = torch.Generator().manual_seed(0)
        d = local.geom.n_heads * local.geom.head_dim
        ev_l = envoys(local.lm, local.arch, local.geom, local.name)
        ev_r = envoys(remote.lm, remote.arch, remote.geom, remote.name)

        def run_capture(p, r):
            for b in batches:
                out = _capture(*p, rope_op, b.model_inputs, b.cand, r)
            return out

        def run_steer(ev, m, r):
            for b in batches:
                n = b.cand.shape[0]
                forward.forward_logits(
                    m.lm,
                    ev,
                    b.model_inputs,
                    b.cand,
                    {1: torch.randn(n, d, generator=g)},
                    torch.randn(n, d, generator=g),
                    remote=r,
                )

        for label, fn_l, fn_r in (
            ("capture trace", lambda: run_capture(pl, False), lambda: run_capture(pr, url)),
            ("steering forward", lambda: run_steer(ev_l, local, False), lambda: run_steer(ev_r, remote, url)),
        ):
            fn_l(), fn_r()  # warm
            tl, _ = _median_s(fn_l, 3)
            tr, _ = _median_s(fn_r, 3)
            n = len(exs)
            rows.append(
                (
                    f"{label}: examples/s local vs remote ({n} examples, {len(batches)} traces of "
                    f"{args.batch_size} x (audio + silence))",
                    f"{n / tl:.1f} vs {n / tr:.1f} (remote {tr / tl:.2f}x the time)",
                )
            )
    finally:
        if started:
            t0 = time.perf_counter()
            subprocess.run([str(DEPLOY / "stop.sh"), "--keep-netns"], env=env, capture_output=True, text=True)
            rows.append(("stop.sh", f"{time.perf_counter() - t0:.1f} s"))

    cpu = "unknown"
    try:
        cpu = next(x.split(":", 1)[1].strip() for x in open("/proc/cpuinfo") if x.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"NDIF overhead on the tiny model ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    print(
        f"machine: {os.cpu_count()} CPU cores ({cpu}), no GPU; torch threads 1; Python {platform.python_version()}"
    )
    la, lb = load_before, os.getloadavg()
    print(
        f"load average (1, 5, 15 min) before: {la[0]:.1f} {la[1]:.1f} {la[2]:.1f}; after: {lb[0]:.1f} {lb[1]:.1f} {lb[2]:.1f}"
    )
    print(
        f"client: nnsight {version('nnsight')}, torch {version('torch')}, transformers {version('transformers')}; "
        "server: deploy/ndif (ndif 0.1.2, nnsight 0.8.0, CPU model actor, float32), all on loopback"
    )
    print()
    print("| measurement | value |")
    print("|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
