"""Time one qmini forward on this CPU (a 10-s listen-bench-like clip, the letters prompt, full model path
through the processor), to decide whether a main job (240 items, 2 passes each) fits 5 minutes.

Usage: python recipes/qmini/cpu_forward.py [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from steer_audio.data import prompts as P
from steer_audio.data.mmau import Example
from steer_audio.models.qmini import assemble as qa


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model, proc = qa.load_qmini(require_weights=False)
    ex = Example(
        "t",
        "Which instrument is playing?",
        ("piano", "violin", "flute", "trumpet"),
        "piano",
        frozenset({0}),
        "music",
    )
    text = P.render(proc, ex, P.prompt_spec("letters"))
    wave = (0.1 * np.sin(np.linspace(0, 2 * np.pi * 440 * 10, 160_000))).astype(np.float32)
    inputs = proc(text=text, audio=[wave], sampling_rate=16_000, return_tensors="pt")
    times = []
    with torch.no_grad():
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            model(**inputs)
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(  # noqa: T201
        json.dumps(
            {
                "tokens": int(inputs["input_ids"].shape[1]),
                "seconds": [round(t, 2) for t in times],
                "median_s": round(med, 2),
                "main_job_estimate_s": round(480 * med, 0),
                "threads": a.threads,
            }
        )
    )


if __name__ == "__main__":
    main()
