"""Padded share of batch-16 capture tokens on 256 MMAU test-mini questions under 10 s clips (qwen2 tokenizer, CPU):
the previous order (exact clip length, then id) vs capture_order vs an oracle sorted by token count.

    .venv/bin/python benchmarks/pad_waste.py
"""

import sys

sys.path.insert(0, "benchmarks")
import numpy as np
from gpu_throughput import examples

from steer_audio.capture.inputs import encode
from steer_audio.capture.run import capture_order
from steer_audio.data.prompts import prompt_spec
from steer_audio.models.random7b import random_processor

proc = random_processor("qwen2")
ps = prompt_spec("letters")
aid = int(proc.tokenizer.convert_tokens_to_ids("<|AUDIO|>"))
exs, wavs = examples(256, [10.0], seed=7)
lens = {}
for i in range(0, 256, 32):
    b = encode(proc, exs[i : i + 32], wavs[i : i + 32], None, ps, aid)
    for e, n in zip(exs[i : i + 32], b.n_tokens, strict=True):
        lens[e.id] = n


def waste(order, bs=16):
    tot = real = 0
    for i in range(0, len(order), bs):
        ch = [lens[e.id] for e in order[i : i + bs]]
        tot += max(ch) * len(ch)
        real += sum(ch)
    return tot, real, 1 - real / tot


print("previous order (clip length, id)", waste(sorted(exs, key=lambda e: (len(e.audio_array), e.id))))


print("capture_order", waste(capture_order(exs)))
print("oracle", waste(sorted(exs, key=lambda e: lens[e.id])))
print(np.percentile(list(lens.values()), [0, 25, 50, 75, 100]))
