"""Which training rows each step sees, and the target of each (deterministic in (seed, step)).

With probability ``silence`` a row is the all-zero twin (target: the hinted choice, so digital silence
means "fall back to the text"); otherwise with probability ``no_hint`` the question has no hint; otherwise
the hint names the right answer with probability ``p`` (the text-prior reliability knob) and a wrong one
otherwise. ``no_hint=1, silence=0`` trains on hint-free rows only: any text dominance the model then shows
is the language model's own prior.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .config import TrainConfig


def index_twins(rows: Sequence[dict]) -> dict[str, dict[str, dict]]:
    """Rows grouped by base item: ``{twin_of: {condition: row}}``."""
    by: dict[str, dict[str, dict]] = {}
    for r in rows:
        by.setdefault(r["twin_of"], {})[r["condition"]] = r
    return by


def sample_batch(twins: list[dict[str, dict]], cfg: TrainConfig, step: int) -> list[tuple[dict, str]]:
    """Rows and their target choice for one step (deterministic in (seed, step))."""
    rng = np.random.default_rng([cfg.seed, step])
    out = []
    for _ in range(cfg.batch_size):
        tw = twins[int(rng.integers(0, len(twins)))]
        u = rng.random()
        if u < cfg.silence:
            row = (
                tw["silence"]
                if rng.random() < 0.5
                else {
                    **tw["consistent"],
                    "audio_id": tw["silence"]["audio_id"],
                    "condition": "silence",
                    "id": tw["consistent"]["id"],
                }
            )
            out.append((row, row["prior_choice"]))
        elif rng.random() < cfg.no_hint:
            out.append((tw["neutral"], tw["neutral"]["answer"]))
        elif rng.random() < cfg.p:
            out.append((tw["consistent"], tw["consistent"]["answer"]))
        else:
            out.append((tw["misleading"], tw["misleading"]["answer"]))
    return out
