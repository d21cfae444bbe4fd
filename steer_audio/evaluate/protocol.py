"""The evaluation protocol, written down in one place: which items may be used for statistics, and how
alpha (and a layer, a threshold) are chosen.

**Real audio only.** An item whose audio was replaced (listen-bench's ``silence`` twin, or any other
ablation condition: the clip swapped for noise, a shuffle, or no audio at all) is a *diagnostic*. Such
items are always wrong or nearly so and carry little audio attention mass, so inside D_cal they turn the
head scores r into a silence detector, and inside the evaluation split they inflate the listening checks.
They never reach D_cal, r, the specialist set S_K, the listening checks (AUC, flip test), the selection of
alpha / layer / threshold, or the headline accuracy and McNemar tests. They are still captured, scored at
the configuration chosen on calibration, and reported in a table of their own.

**Selection rule** (applied to calibration items only, real audio only): every method's free parameters
(alpha; the layer for `single-layer`; the gate threshold for `gated`) are the ones with the highest
calibration accuracy; ties go to the smaller |alpha|, then to the earlier candidate in the method's own
order (smaller layer index, lower threshold quantile). The evaluation split is scored once, at that
choice. `SELECTION_RULE` is the sentence the reports print before any number.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any

from ..data.mmau import Example

#: conditions whose audio is not the item's own clip (listen-bench writes `silence`; the others name the
#: negatives of `data/audio.py` used as a replacement clip, and `no-audio` a prompt without audio)
ABLATION_CONDITIONS = frozenset({"silence", "floor", "noise", "shuffle", "drop", "no-audio"})
#: an MMAU-format item may also mark itself: `"audio_ablated": true`
ABLATION_FLAG = "audio_ablated"

SELECTION_RULE = (
    "alpha (and the layer of single-layer, the threshold of gated) is chosen on the calibration split, "
    "real-audio items only: the highest calibration accuracy, ties to the smaller |alpha|, then to the "
    "earlier candidate (smaller layer, lower threshold); the evaluation split is scored once at that choice"
)


def is_ablated(example: Example) -> bool:
    """True when the example's audio is replaced (a diagnostic twin), never a statistics item."""
    return (
        str(example.extra.get("condition", "")) in ABLATION_CONDITIONS
        or example.extra.get(ABLATION_FLAG) is True
    )


def split_real(examples: Sequence[Example]) -> tuple[list[Example], list[Example]]:
    """(real-audio items, diagnostic items), each in the input order."""
    real = [e for e in examples if not is_ablated(e)]
    diag = [e for e in examples if is_ablated(e)]
    return real, diag


def condition(example: Example) -> str | None:
    c = example.extra.get("condition")
    return None if c is None else str(c)


def pick(curve: Sequence[float], alphas: Sequence[float]) -> int:
    """The selection rule on one calibration curve: argmax accuracy, ties to the smaller |alpha| (then the
    earlier index). Returns the index into `alphas`."""
    best = max(curve)
    return min((i for i, c in enumerate(curve) if c == best), key=lambda i: (abs(alphas[i]), i))


def pick_grid(cal: Sequence[Sequence[float]], alphas: Sequence[float]) -> tuple[int, int]:
    """The selection rule over candidates x alphas: cal[j][i] = calibration accuracy of candidate j (a
    layer, a threshold, in the method's own order) at alphas[i]. Returns (j, i)."""
    cells = [(j, i) for j in range(len(cal)) for i in range(len(alphas))]
    best = max(cal[j][i] for j, i in cells)
    return min(
        ((j, i) for j, i in cells if cal[j][i] == best), key=lambda ji: (abs(alphas[ji[1]]), ji[0], ji[1])
    )


def describe(examples: Sequence[Example]) -> dict[str, Any]:
    """Counts per condition of the real and diagnostic parts (for the reports)."""
    real, diag = split_real(examples)
    out: dict[str, Any] = {"n_real": len(real), "n_diagnostic": len(diag)}
    for name, part in (("real", real), ("diagnostic", diag)):
        counts: dict[str, int] = {}
        for e in part:
            k = condition(e) or "-"
            counts[k] = counts.get(k, 0) + 1
        out[f"{name}_by_condition"] = counts
    return out


@dataclass
class Sets:
    """The statistics sets of one run, formed from the two splits and the ids that have a capture.

    `cal` and `ev` hold real-audio items with a capture (D_cal and the evaluation items); `ev_missing` the
    real-audio evaluation items without one (counted wrong in headline accuracy); `diag` the captured
    ablated-audio evaluation items (the diagnostic table only); `cal_diag` the ablated calibration items
    (counted, never used)."""

    cal: list[Example]
    ev: list[Example]
    ev_missing: list[Example]
    diag: list[Example]
    cal_diag: list[Example]
    cal_missing: list[Example]

    def describe(self) -> dict[str, Any]:
        return {
            "rule": "real-audio items only; ablated-audio twins are diagnostics "
            f"(conditions {', '.join(sorted(ABLATION_CONDITIONS))} or `{ABLATION_FLAG}`)",
            "selection_rule": SELECTION_RULE,
            "calibration": describe(self.cal) | {"n_diagnostic_excluded": len(self.cal_diag)},
            "evaluation": describe(self.ev + self.ev_missing)
            | {"n_diagnostic_scored_separately": len(self.diag), "n_missing": len(self.ev_missing)},
        }


def form_sets(calib: Sequence[Example], evals: Sequence[Example], have: Container[str]) -> Sets:
    """Real / diagnostic / missing parts of both splits (`have`: the ids with a capture)."""
    cal_real, cal_diag = split_real(calib)
    ev_real, ev_diag = split_real(evals)
    return Sets(
        cal=[e for e in cal_real if e.id in have],
        ev=[e for e in ev_real if e.id in have],
        ev_missing=[e for e in ev_real if e.id not in have],
        diag=[e for e in ev_diag if e.id in have],
        cal_diag=list(cal_diag),
        cal_missing=[e for e in cal_real if e.id not in have],
    )
