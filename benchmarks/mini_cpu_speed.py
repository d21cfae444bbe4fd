"""CPU speed of `mini`: (a) seconds per plain forward pass on a 10-s clip, last-position logits only, and
(b) `--capture`: seconds (wall and process CPU, the latter less sensitive to other load) per capture batch (the main job's hot loop: one nnsight trace per batch of audio and
silence rows, capture/run.py) on real listen-bench items, under each setting of the levers: autograd mode
(grad / no_grad / inference_mode), torch threads and batch size. Every setting's outputs are compared with the
first one's (max abs difference; 0 means bit-identical).

(c) `--main-capture`: the main job's whole capture (all of listen-bench-main, batches of 8, `run_capture` as
the evaluate step runs it) once, wall and process CPU seconds; `--whole-rows` turns the shared-prefix and
same-clip encoder levers off (the capture before them); `--compare DIR` reports the max abs difference of every
cached field against another capture folder (e.g. a run directory's `capture/`).

Usage: python benchmarks/mini_cpu_speed.py [--threads 2] [--repeats 5] [--seconds 10]
       python benchmarks/mini_cpu_speed.py --capture [--items 16] [--repeats 3] [--batch 8] [--threads-list 1,2]
           [--share-list 0,1]
       python benchmarks/mini_cpu_speed.py --main-capture [--threads 1] [--whole-rows] [--compare DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch


def forward_speed(args: argparse.Namespace) -> None:
    from steer_audio.models.mini import last_position_logits, load_mini
    from steer_audio.models.mini.assemble import build_mini

    torch.set_num_threads(args.threads)
    model, proc = build_mini() if args.untrained else load_mini()
    y = (0.1 * np.random.default_rng(0).standard_normal(int(16000 * args.seconds))).astype(np.float32)
    conv = [
        {
            "role": "user",
            "content": [
                {"type": "audio", "audio_url": "x.wav"},
                {"type": "text", "text": "Which sound is it? Choices: beep, hiss, buzz, siren."},
            ],
        }
    ]
    text = proc.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
    inputs = proc(text=text, audio=[y], sampling_rate=16000, return_tensors="pt")
    n = inputs["input_ids"].shape[1]
    with torch.inference_mode():
        last_position_logits(model, **inputs)  # warm-up
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            last_position_logits(model, **inputs)
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        model(**inputs)
        full = time.perf_counter() - t
    print(
        f"clip {args.seconds:.1f} s, {n} tokens, threads {args.threads}: "
        f"median {statistics.median(times):.3f} s/forward (min {min(times):.3f}, max {max(times):.3f}) "
        f"last-position logits; full-vocabulary logits at every position: {full:.3f} s"
    )


GRAD_MODES: dict[str, Callable[[], contextlib.AbstractContextManager]] = {
    "grad": contextlib.nullcontext,
    "no_grad": torch.no_grad,
    "inference_mode": torch.inference_mode,
}


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _trace(m: Any, ev: Any, batch: Any, mode: str, dedupe: bool, share: bool) -> dict[str, torch.Tensor]:
    """capture/run.py's `trace_batch` (which always runs under no_grad) with the autograd mode as a lever."""
    from steer_audio.capture import prefix
    from steer_audio.capture.run import ROW_OUTPUTS, _duplicate_rows, trace_batch
    from steer_audio.capture.trace import capture_trace

    if mode == "no_grad":
        return trace_batch(m, ev, batch, dedupe=dedupe, share_prefix=share)
    src = _duplicate_rows(batch) if dedupe else None
    b, index = src if src is not None else (batch, None)
    with GRAD_MODES[mode]():
        inputs = m.model_inputs(b.model_inputs, b.row_keys)
        am, past = b.audio_mask, None
        shared = prefix.share(m, inputs, am) if share and prefix.applies(m) else None
        if shared is not None:
            inputs, am, past = shared.inputs, shared.audio_mask, shared.past_keys
        out = capture_trace(m.lm, ev, m.geom, inputs, am, b.cand, m.remote, None, past)
    if index is not None:
        out = {k: (v[index] if k in ROW_OUTPUTS else v) for k, v in out.items()}
    return out


def capture_speed(args: argparse.Namespace) -> None:
    from steer_audio.capture.prepare import PrepSpec, prepare_batch
    from steer_audio.capture.run import ROW_OUTPUTS, capture_order
    from steer_audio.capture.trace import envoys
    from steer_audio.data import mmau
    from steer_audio.data.named import main_bench_dir
    from steer_audio.models import loaded

    m = loaded.load("mini", device="cpu")
    ds = mmau.load(main_bench_dir() / "listen-bench.json")
    exs = capture_order([e for e in ds.examples if e.extra.get("split") == "test"])[-args.items :]
    spec = PrepSpec(
        window_s=m.audio_window_s,
        negative_kind="silence",
        strict=True,
        seed=0,
        prompt=m.prompt,
        audio_token_id=m.geom.audio_token_id,
        feature_device=None,
    )
    ev = envoys(m.lm, m.arch, m.geom, m.name)
    settings = [
        (g, t, b, d, sh)
        for b in [int(x) for x in args.batch_list.split(",")]
        for t in [int(x) for x in args.threads_list.split(",")]
        for g in args.modes.split(",")
        for d in [bool(int(x)) for x in args.dedupe_list.split(",")]
        for sh in [bool(int(x)) for x in args.share_list.split(",")]
    ]
    batches = {
        b: [prepare_batch(m.processor, spec, exs[i : i + b])[0] for i in range(0, len(exs), b)]
        for b in {s[2] for s in settings}
    }
    n_sil = sum(e.extra.get("condition") == "silence" for e in exs)
    print(
        f"{len(exs)} longest test items of listen-bench ({n_sil} silence twins; an audio and a silence row "
        f"each), {args.repeats} repeats, torch {torch.__version__}"
    )
    ref: dict[str, torch.Tensor] | None = None
    for g, t, b, d, sh in settings:
        times, cpus = [], []
        outs: dict[str, list[torch.Tensor]] = {}
        with _threads(t):
            for _ in range(args.repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                outs = {}
                for batch in batches[b]:
                    out = _trace(m, ev, batch, g, d, sh)
                    n = len(batch.ids)
                    for k in ROW_OUTPUTS:  # audio rows then negative rows, compared across batch sizes
                        v = out[k].detach()
                        outs.setdefault(k + "_a", []).append(v[:n].clone())
                        outs.setdefault(k + "_n", []).append(v[n:].clone())
                times.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
        cat = {k: torch.cat(v) for k, v in outs.items()}
        if ref is None:
            ref = cat
        diff = max(float((cat[k].float() - ref[k].float()).abs().max()) for k in ref)
        per_item = statistics.median(times) / len(exs)
        print(
            f"mode {g:<15} dedupe {int(d)} share {int(sh)} threads {t} batch {b:>2}: median {statistics.median(times):7.2f} s "
            f"(min {min(times):.2f}) = {per_item:.3f} s/item; CPU {statistics.median(cpus):7.2f} s; "
            f"max |diff| vs first setting {diff:.3g}"
        )


def main_capture(args: argparse.Namespace) -> None:
    import os
    import tempfile
    from pathlib import Path

    from steer_audio.capture import prefix
    from steer_audio.capture.cache import CaptureCache
    from steer_audio.capture.run import run_capture
    from steer_audio.data import mmau
    from steer_audio.data.named import main_bench_dir
    from steer_audio.models import audio_embed, loaded

    torch.set_num_threads(args.threads)
    if args.whole_rows:  # the capture before the shared-prefix and same-clip encoder levers
        prefix.applies = lambda m: False  # type: ignore[assignment]
        audio_embed.content_key = lambda feats, i, n_mel: f"row:{i}"  # type: ignore[assignment]
    m = loaded.load("mini", device="cpu")
    exs = mmau.load(main_bench_dir() / "listen-bench.json").examples
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        cache = run_capture(m, exs, Path(tmp) / "capture", batch_size=8, strict=True)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(
            f"main-job capture, {len(exs)} items, threads {args.threads}, "
            f"{'whole rows' if args.whole_rows else 'shared prefixes + same-clip encoder'}: "
            f"wall {wall:.1f} s, process CPU {cpu:.1f} s (load average {os.getloadavg()[0]:.1f})"
        )
        if args.compare:
            ids = [e.id for e in exs]
            a, b = cache.load(ids), CaptureCache(Path(args.compare)).load(ids)
            for k in a.t:
                x, y = a[k].float(), b[k].float()
                fin = torch.isfinite(y)
                same = bool(torch.equal(torch.isfinite(x), fin)) and bool(torch.equal(x[~fin], y[~fin]))
                d = float((x[fin] - y[fin]).abs().max()) if fin.any() else 0.0
                rel = d / max(float(y[fin].abs().max()) if fin.any() else 1.0, 1e-30)
                print(
                    f"  {k:<9} max |diff| {d:.3g} (relative to max |x| {rel:.2g}); non-finite equal: {same}"
                )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument(
        "--untrained", action="store_true", help="skip the trained projector (timing is the same)"
    )
    ap.add_argument("--capture", action="store_true", help="time capture batches under each lever setting")
    ap.add_argument("--items", type=int, default=16, help="--capture: the N longest listen-bench test items")
    ap.add_argument("--modes", default="grad,no_grad,inference_mode", help="--capture: autograd modes")
    ap.add_argument("--threads-list", default="2", help="--capture: comma-separated torch thread counts")
    ap.add_argument("--batch-list", default="8", help="--capture: comma-separated batch sizes")
    ap.add_argument("--dedupe-list", default="0,1", help="--capture: identical-row dedupe off (0) / on (1)")
    ap.add_argument("--share-list", default="1", help="--capture: shared prefixes off (0) / on (1)")
    ap.add_argument("--main-capture", action="store_true", help="time the main job's whole capture once")
    ap.add_argument("--whole-rows", action="store_true", help="--main-capture: shared-prefix levers off")
    ap.add_argument("--compare", default=None, help="--main-capture: a capture folder to compare with")
    args = ap.parse_args()
    if args.main_capture:
        main_capture(args)
    elif args.capture:
        capture_speed(args)
    else:
        forward_speed(args)


if __name__ == "__main__":
    main()
