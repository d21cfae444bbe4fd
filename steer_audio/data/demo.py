"""A small synthetic MMAU-format set (pure tones with a pitch question), written on demand.

For smoke runs of the pipeline with the tiny random model only: it measures nothing about listening."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

PITCHES = {"low": 220.0, "medium": 440.0, "high": 880.0, "very high": 1760.0}
DOMAINS = ("sound", "music", "speech")


def write_demo(root: Path, n: int = 120, seed: int = 0) -> Path:
    root = Path(root)
    path = root / "demo.json"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    names = list(PITCHES)
    items = []
    for i in range(n):
        ans = names[i % len(names)]
        dur = 1.0 + rng.random() * 2.0
        t = np.arange(int(dur * 16000)) / 16000
        wav = 0.3 * np.sin(2 * np.pi * PITCHES[ans] * t) + 0.02 * rng.standard_normal(t.shape[0])
        sf.write(root / "audio" / f"demo{i:04d}.wav", wav.astype(np.float32), 16000, subtype="PCM_16")
        order = list(rng.permutation(names))
        items.append(
            {
                "id": f"demo{i:04d}",
                "audio_id": f"./audio/demo{i:04d}.wav",
                "question": "How high is the tone?",
                "choices": order,
                "answer": ans,
                "dataset": "steer-audio-demo",
                "task": DOMAINS[i % 3],
                "split": "demo",
                "category": "Perception",
                "sub-category": "pitch",
                "difficulty": "easy",
            }
        )
    path.write_text(json.dumps(items, indent=1))
    return path
