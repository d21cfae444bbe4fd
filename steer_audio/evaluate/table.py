"""The results table of an evaluation: one row per method result, on real-audio evaluation items (n,
bootstrap CI, McNemar vs the baseline and vs the matched random-head control), per domain, per listen-bench
condition (and per alpha on both splits), and the diagnostic twins at the same configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.mmau import Example
from ..discover.heads import correctness
from ..steer.methods.base import MethodResult
from .protocol import condition
from .stats import bootstrap_ci, mcnemar

if TYPE_CHECKING:
    from .run import Evaluator

#: the matched random-head control of the McNemar tests (same K, --seeds seeds, alpha on calibration)
CONTROL = "random-layer"


def _control_rows(ev: Evaluator) -> tuple[np.ndarray | None, list[dict[str, Any]]]:
    """The matched random-head control: its median seed's correctness, and every seed's."""
    ctrl = next((r for r in ev.results if r.name == CONTROL), None)
    seeds = ev.extra.get("random_layer_seeds") or []
    return (
        ev.correct_vector(ctrl.pred) if ctrl is not None else None,
        [s | {"correct": ev.correct_vector(s["pred"])} for s in seeds],
    )


def results_table(ev: Evaluator) -> list[dict[str, Any]]:
    """One row per result: headline accuracy and tests on real-audio evaluation items (n, bootstrap CI,
    McNemar vs the baseline and vs the matched random-head control), per domain, per condition (and per
    alpha on both splits), and the diagnostic twins' accuracy at the same configuration."""
    base = ev.correct_vector(ev.results[0].pred)
    ctrl, seeds = _control_rows(ev)
    all_ex = ev.ev_ex + ev.ev_missing
    domains = sorted({e.domain for e in all_ex})
    conds = sorted({k for e in all_ex if (k := condition(e))})
    rows = []
    for r in ev.results:
        c = ev.correct_vector(r.pred)
        row: dict[str, Any] = {
            "method": r.name,
            **r.params,
            "accuracy": float(c.mean()),
            "ci95": bootstrap_ci(c, seed=ev.cfg.seed),
            "n": len(c),
            "n_missing": len(ev.ev_missing),
            "by_domain": _means(c, [e.domain for e in all_ex], domains),
            "n_by_domain": _counts([e.domain for e in all_ex], domains),
        }
        if conds:  # listen-bench: accuracy per twin condition and how often a misleading hint is followed
            row["by_condition"] = _means(c, [condition(e) for e in all_ex], conds)
            row["n_by_condition"] = _counts([condition(e) for e in all_ex], conds)
            chosen = dict(zip([e.id for e in ev.ev_ex], r.pred, strict=True))
            follow = _prior_follow(all_ex, chosen)
            if follow is not None:
                row["prior_follow_misleading"] = follow
        if r.name != "baseline":
            row["gain_pp"] = 100 * (row["accuracy"] - float(base.mean()))
            row["gain_ci95_pp"] = [100 * x for x in bootstrap_ci(c - base, seed=ev.cfg.seed)]
            row["mcnemar_vs_baseline"] = mcnemar(base, c)
            if ctrl is not None and r.name != CONTROL:
                row["mcnemar_vs_control"] = mcnemar(ctrl, c) | {"control": f"{CONTROL} (median seed)"}
                row["vs_control_seeds"] = {
                    "n_seeds": len(seeds),
                    "seeds_beaten": int(sum(row["accuracy"] > float(s["correct"].mean()) for s in seeds)),
                    "seed_accuracy_mean": float(np.mean([s["correct"].mean() for s in seeds])),
                    "p_values": [mcnemar(s["correct"], c)["p_value"] for s in seeds],
                }
        perm = ev.permuted(r)
        if perm:
            row["option_permutations"] = perm
        if r.calib_curve:
            row["calib_curve"] = r.calib_curve
            row["eval_curve"] = r.eval_curve
            row["condition_curves"] = _condition_curves(ev, r)
        diag = _diagnostic(ev, r)
        if diag:
            row["diagnostic"] = diag
        rows.append(row)
    return rows


def _condition_curves(ev: Evaluator, r: MethodResult) -> dict[str, Any]:
    """Accuracy per condition at every alpha, on both splits (captured real-audio items)."""
    out: dict[str, Any] = {"alpha": r.alphas}
    for split, exs, cc in (
        ("calibration", ev.cal_ex, r.cal_correct),
        ("evaluation", ev.ev_ex, r.ev_correct),
    ):
        if cc is None:
            continue
        labels = [condition(e) or "all" for e in exs]
        out[split] = {
            k: {
                "accuracy": [float(x) for x in cc[:, [lab == k for lab in labels]].mean(1)],
                "n": int(sum(lab == k for lab in labels)),
            }
            for k in sorted(set(labels))
        }
    return out


def _diagnostic(ev: Evaluator, r: MethodResult) -> dict[str, Any] | None:
    """The ablated-audio twins at the method's chosen configuration: accuracy, n, hint followed."""
    if r.diag_pred is None or not ev.diag_ex:
        return None
    c = correctness(r.diag_pred, [e.correct for e in ev.diag_ex])
    labels = [condition(e) or "ablated" for e in ev.diag_ex]
    out: dict[str, Any] = {}
    for k in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == k]
        exs = [ev.diag_ex[i] for i in idx]
        hinted = [
            (e, int(r.diag_pred[i])) for i, e in zip(idx, exs, strict=True) if e.extra.get("prior_choice")
        ]
        out[k] = {
            "accuracy": float(c[idx].mean()),
            "n": len(idx),
            "hint_followed": float(np.mean([e.choices[p] == e.extra["prior_choice"] for e, p in hinted]))
            if hinted
            else None,
        }
    return out


def _means(c: np.ndarray, labels: list[Any], keys: list[str]) -> dict[str, float]:
    return {k: float(np.mean([x for x, lab in zip(c, labels, strict=True) if lab == k])) for k in keys}


def _counts(labels: list[Any], keys: list[str]) -> dict[str, int]:
    return {k: sum(lab == k for lab in labels) for k in keys}


def _prior_follow(exs: list[Example], chosen: dict[str, Any]) -> float | None:
    """How often the hinted (wrong) option of a misleading item is chosen; missing captures count as not."""
    mis = [e for e in exs if condition(e) == "misleading" and e.extra.get("prior_choice")]
    if not mis:
        return None
    return float(
        np.mean([e.id in chosen and e.choices[int(chosen[e.id])] == e.extra["prior_choice"] for e in mis])
    )
