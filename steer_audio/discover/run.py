"""Stage: capture cache + splits -> heads.json, head_scores.safetensors, listening.jsonl, summary.json.

Real audio only (evaluate/protocol.py): r, the specialist set and the listening checks are computed on
real-audio items; `discover` refuses ablated-audio twins, and `run_discovery` (the stage's own runner,
used by the `discover` command and by the Evaluator) drops them before anything is computed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..capture.cache import CaptureCache, CaptureData
from ..data.mmau import Example
from ..errors import SteerAudioError
from ..evaluate.protocol import Sets, form_sets, is_ablated
from ..io import HEAD_SCORES, HEADS, LISTENING, save_tensors, write_json, write_jsonl
from .heads import (
    HeadSet,
    check_auc,
    check_flips,
    correctness,
    listening_score,
    point_biserial,
    predictions,
    select,
)


@dataclass
class Discovery:
    r: np.ndarray
    heads: HeadSet
    summary: dict[str, Any]


def discover(
    calib: CaptureData,
    evals: CaptureData,
    calib_ex: list[Example],
    eval_ex: list[Example],
    k: int,
    ranking: str = "abs",
    normalise: bool = True,
    draws: int = 100,
    seed: int = 0,
) -> Discovery:
    """Eqs. 1-3 and the two listening checks on real-audio rows (ablated-audio twins are refused)."""
    for name, exs, d in (("calibration", calib_ex, calib), ("evaluation", eval_ex, evals)):
        bad = [e.id for e in exs if is_ablated(e)]
        if bad:
            raise SteerAudioError(
                f"{len(bad)} ablated-audio item(s) in the {name} set of discovery (e.g. {bad[0]}): "
                "they are diagnostics, never D_cal or evaluation items (use run_discovery)"
            )
        if list(d.ids) != [e.id for e in exs]:
            raise SteerAudioError(f"the {name} capture rows do not match its examples")
    c_cal = correctness(predictions(calib["logits_a"]), [e.correct for e in calib_ex])
    mass_cal = calib["mass_a"].numpy()
    r = point_biserial(mass_cal, c_cal)
    hs = select(r, k, ranking)
    pred_ev = predictions(evals["logits_a"])
    c_ev = correctness(pred_ev, [e.correct for e in eval_ex])
    mass_ev = evals["mass_a"].numpy()
    s_ev = listening_score(mass_ev, hs, normalise)
    flipped = pred_ev != predictions(evals["logits_n"])
    summary = {
        "k": k,
        "ranking": ranking,
        "normalised_score": normalise,
        "n_calib": len(calib_ex),
        "n_eval": len(eval_ex),
        "calib_accuracy": float(c_cal.mean()),
        "eval_accuracy": float(c_ev.mean()),
        "heads": hs.names(),
        "layer_set": sorted(hs.layer_weights()),
        "layer_weights": {str(k_): v for k_, v in hs.layer_weights().items()},
        "check_i_auc": check_auc(mass_ev, c_ev, r, hs, draws, seed, normalise),
        "check_ii_flips": check_flips(s_ev, flipped),
        "mean_audio_mass_by_layer": mass_cal.mean(axis=(0, 2)).round(6).tolist(),
    }
    return Discovery(r, hs, summary)


@dataclass
class DiscoveryRun:
    """`run_discovery`'s result: the discovery and the real-audio captures it was computed on."""

    discovery: Discovery
    sets: Sets
    calib: CaptureData
    evals: CaptureData


def run_discovery(
    cache: CaptureCache,
    calib_ex: list[Example],
    eval_ex: list[Example],
    k: int,
    ranking: str = "abs",
    normalise: bool = True,
    draws: int = 100,
    seed: int = 0,
) -> DiscoveryRun:
    """The discover stage: form the real-audio sets (protocol), load their captures, run `discover`."""
    sets = form_sets(calib_ex, eval_ex, cache.index["examples"])
    if not sets.cal:
        raise SteerAudioError("no real-audio calibration example has a capture (all missing or ablated?)")
    if not sets.ev:
        raise SteerAudioError("no real-audio evaluation example has a capture (all missing or ablated?)")
    dc = cache.load([e.id for e in sets.cal])
    de = cache.load([e.id for e in sets.ev])
    disc = discover(dc, de, sets.cal, sets.ev, k, ranking, normalise, draws, seed)
    disc.summary["protocol"] = sets.describe()
    return DiscoveryRun(disc, sets, dc, de)


def write(d: Discovery, out: Path, calib: CaptureData, evals: CaptureData, eval_ex: list[Example]) -> None:
    save_tensors(
        out / HEAD_SCORES,
        {"r": torch.tensor(d.r, dtype=torch.float32), "mean_mass_calib": calib["mass_a"].mean(0)},
    )
    write_json(
        out / HEADS, {"k": d.heads.k, "heads": d.heads.to_json(), "layer_weights": d.summary["layer_weights"]}
    )
    s = listening_score(evals["mass_a"].numpy(), d.heads, d.summary["normalised_score"])
    pred = predictions(evals["logits_a"])
    pred0 = predictions(evals["logits_n"])
    write_jsonl(
        out / LISTENING,
        (
            {
                "id": e.id,
                "domain": e.domain,
                "score": float(s[i]),
                "correct": int(pred[i]) in e.correct,
                "flip": bool(pred[i] != pred0[i]),
            }
            for i, e in enumerate(eval_ex)
        ),
    )
