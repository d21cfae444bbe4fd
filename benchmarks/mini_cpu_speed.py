"""Seconds per forward pass of `mini` on a 10-s clip (fp32, CPU), logits at the last position only.

Usage: python benchmarks/mini_cpu_speed.py [--threads 2] [--repeats 5] [--seconds 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from steer_audio.models.mini import last_position_logits, load_mini
from steer_audio.models.mini.assemble import build_mini


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument(
        "--untrained", action="store_true", help="skip the trained projector (timing is the same)"
    )
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()
