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
