"""Which training rows each step sees, and the target of each (deterministic in (seed, step)).

With probability ``silence`` a row is the all-zero twin (target: the hinted choice, so digital silence
means "fall back to the text"); otherwise with probability ``no_hint`` the question has no hint; otherwise
the hint names the right answer with probability ``p`` (the text-prior reliability knob) and a wrong one
otherwise. ``no_hint=1, silence=0`` trains on hint-free rows only: any text dominance the model then shows
is the language model's own prior.

Extra training folders (``train-mini --extra-train DIR``, e.g. listen-broad) add a second pool of base
items: with probability ``extra_share`` a row's base item comes from it. Without extra folders (or with
``extra_share=0``) the random stream, and so every batch, is exactly the one without the option.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..bench import listen_bench as lb
from .config import TrainConfig, TrainError


def index_twins(rows: Sequence[dict]) -> dict[str, dict[str, dict]]:
    """Rows grouped by base item: ``{twin_of: {condition: row}}``."""
    by: dict[str, dict[str, dict]] = {}
    for r in rows:
        by.setdefault(r["twin_of"], {})[r["condition"]] = r
    return by


def load_extra_rows(dirs: Sequence[Path]) -> list[dict]:
    """The ``train`` rows of extra bench folders (listen-bench's layout), each ``audio_id`` made absolute
    so that it resolves (and keys the encoder cache) whatever the main data folder is."""
    rows: list[dict] = []
    for d in dirs:
        d = Path(d).resolve()
        if not (d / lb.DATA_JSON).is_file():
            raise TrainError(f"no {lb.DATA_JSON} in {d}; run `steer-audio bench --broad --out {d}`")
        mine = [r for r in lb.load_items(d) if r["split"] == "train"]
        if not mine:
            raise TrainError(f"{d} has no training rows")
        rows += [{**r, "audio_id": str(d / r["audio_id"])} for r in mine]
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise TrainError("the extra training folders share row ids")
    return rows


def sample_batch(
    twins: list[dict[str, dict]],
    cfg: TrainConfig,
    step: int,
    extra: Sequence[dict[str, dict]] = (),
) -> list[tuple[dict, str]]:
    """Rows and their target choice for one step (deterministic in (seed, step)); ``extra``: the base
    items of the extra training folders, drawn with probability ``cfg.extra_share``."""
    rng = np.random.default_rng([cfg.seed, step])
    mix = bool(extra) and cfg.extra_share > 0  # no extra draw at all otherwise: the old stream exactly
    out = []
    for _ in range(cfg.batch_size):
        pool = extra if mix and rng.random() < cfg.extra_share else twins
        tw = pool[int(rng.integers(0, len(pool)))]
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
