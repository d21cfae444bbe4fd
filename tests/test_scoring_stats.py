"""The official MMAU rule on hand-written cases, and our statistics against statsmodels/scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from steer_audio.evaluate.mmau_score import official_accuracy, string_match
from steer_audio.evaluate.stats import mcnemar


@pytest.mark.parametrize(
    ("answer", "pred", "choices", "ok"),
    [
        ("Man", "Man", ["Man", "Woman", "Child", "Robot"], True),
        ("Woman", "Man", ["Man", "Woman", "Child", "Robot"], False),
        ("Man and woman", "Man and woman", ["Man", "Man and woman", "Child"], True),
        ("Man", "Man and woman", ["Man", "Man and woman", "Child"], False),
        ("Dog barking", "dog barking", ["Dog barking", "Cat meowing"], True),
        ("4", "4", ["2", "3", "4", "5"], True),
        ("Guitar", "", ["Guitar", "Piano"], False),
    ],
)
def test_string_match(answer, pred, choices, ok):
    assert string_match(answer, pred, choices) is ok


def test_missing_prediction_counts_as_wrong():
    items = [
        {"answer": "Man", "choices": ["Man", "Woman"], "model_output": "Man"},
        {"answer": "Man", "choices": ["Man", "Woman"]},
    ]
    acc, flags = official_accuracy(items)
    assert acc == 0.5 and flags == [True, False]


def test_mcnemar_exact_is_binomial():
    base = np.array([1, 1, 1, 0, 0, 0, 0, 1, 0, 0])
    new = np.array([1, 0, 1, 1, 1, 1, 0, 1, 1, 0])
    res = mcnemar(base, new)
    assert res["exact"] and res["b_base_only"] == 1 and res["c_new_only"] == 4
    assert res["p_value"] == pytest.approx(stats.binomtest(1, 5, 0.5).pvalue)


def _row(method: str, acc: float, n: int = 90, p_base: float | None = None, p_ctrl: float | None = None):
    r = {"method": method, "accuracy": acc, "n": n, "alpha": 1.0}
    if p_base is not None:
        r["mcnemar_vs_baseline"] = {"p_value": p_base, "exact": True}
    if p_ctrl is not None:
        r["mcnemar_vs_control"] = {"p_value": p_ctrl, "exact": True}
    return r


@pytest.mark.parametrize(
    ("hg", "ctrl_acc", "other", "start", "tail"),
    [
        # nothing significant: said plainly, with both p-values
        (
            (0.80, 0.5, 1.0),
            0.80,
            None,
            "Steering did not beat the baseline or the matched",
            "no steering method was significantly better than the baseline (all p >= 0.05).",
        ),
        # beats the baseline but not the control
        ((0.90, 0.01, 0.4), 0.88, None, "Steering beat the baseline but not the matched", "head-guided."),
        # beats both
        ((0.95, 0.001, 0.01), 0.80, None, "Steering beat both", "head-guided."),
        # head-guided fails, another method is significant: named at the end
        ((0.78, 1.0, 1.0), 0.80, ("single-layer", 0.9, 0.02), "Steering did not beat", ": single-layer."),
        # a significant *loss* is not a win
        (
            (0.60, 0.001, 0.001),
            0.80,
            None,
            "Steering did not beat",
            "no steering method was significantly better than the baseline (all p >= 0.05).",
        ),
    ],
)
def test_verdict_sentence(hg, ctrl_acc, other, start, tail):
    from steer_audio.report.markdown import verdict

    rows = [_row("baseline", 0.78), _row("head-guided", hg[0], p_base=hg[1], p_ctrl=hg[2])]
    rows.append(_row("random-layer", ctrl_acc, p_base=0.5))
    if other:
        rows.append(_row(other[0], other[1], p_base=other[2], p_ctrl=0.5))
    s = verdict(rows)
    assert s.startswith(start) and s.endswith(tail), s
    assert s.count(". ") == 0 and s.endswith(".")  # one sentence
    assert f"{100 * hg[0]:.2f}%" in s and f"p = {hg[1]:.3g}" in s
    assert "on 90 real-audio evaluation items" in s
