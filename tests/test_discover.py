"""Discovery maths against independent references (scipy, brute force) and a planted-head model."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from steer_audio.discover.heads import (
    HeadSet,
    auc,
    check_flips,
    listening_score,
    point_biserial,
    select,
)
from steer_audio.errors import SteerAudioError


def test_r_equals_scipy_pointbiserialr():
    rng = np.random.default_rng(0)
    c = (rng.random(80) < 0.4).astype(float)
    x = rng.random((80, 3, 5)) + c[:, None, None] * rng.random((3, 5))
    r = point_biserial(x, c)
    for layer in range(3):
        for h in range(5):
            want = stats.pointbiserialr(c.astype(bool), x[:, layer, h]).statistic
            assert r[layer, h] == pytest.approx(want, abs=1e-12)


def test_constant_head_gets_zero_and_one_class_refuses():
    c = np.array([0, 1, 0, 1.0])
    x = np.ones((4, 1, 2))
    x[:, 0, 1] = [0.1, 0.9, 0.2, 0.8]
    r = point_biserial(x, c)
    assert r[0, 0] == 0.0 and r[0, 1] > 0.9
    with pytest.raises(SteerAudioError, match="one class"):
        point_biserial(x, np.ones(4))


def test_auc_equals_brute_force_pair_count():
    rng = np.random.default_rng(1)
    s = np.round(rng.random(40), 1)  # ties on purpose
    y = (rng.random(40) < 0.5).astype(int)
    pos, neg = s[y == 1], s[y == 0]
    want = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert auc(s, y) == pytest.approx(want, abs=1e-12)


def test_select_by_abs_and_signed_and_k_bounds():
    r = np.array([[0.1, -0.9], [0.5, 0.3]])
    assert select(r, 2, "abs").heads == ((0, 1), (1, 0))
    assert select(r, 2, "signed").heads == ((1, 0), (1, 1))
    with pytest.raises(SteerAudioError, match="outside"):
        select(r, 5)


def test_listening_score_is_r_weighted():
    mass = np.array([[[0.2, 0.4]], [[0.1, 0.0]]])
    hs = HeadSet(((0, 0), (0, 1)), (0.5, -0.25))
    s = listening_score(mass, hs, normalise=False)
    assert s == pytest.approx([0.5 * 0.2 - 0.25 * 0.4, 0.5 * 0.1])
    assert listening_score(mass, hs) == pytest.approx(s / 0.75)


def test_planted_head_is_recovered_first():
    """A synthetic 'model' whose correctness is driven by one head's audio attention."""
    rng = np.random.default_rng(3)
    n, L, H = 400, 6, 8
    mass = rng.random((n, L, H)) * 0.2
    planted = (4, 5)
    logit = 12 * (mass[:, planted[0], planted[1]] - 0.1)
    c = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    r = point_biserial(mass, c)
    assert select(r, 1).heads[0] == planted


def test_flip_check_reports_means_and_test():
    s = np.array([3.0, 2.5, 2.8, 0.1, 0.2, 0.3, 0.0])
    flip = np.array([1, 1, 1, 0, 0, 0, 0], bool)
    res = check_flips(s, flip)
    assert res["mean_flip"] == pytest.approx(2.7666666, abs=1e-6)
    assert res["p_greater"] < 0.05


def test_ties_go_to_the_tiebreak_not_to_option_a():
    import torch

    from steer_audio.discover.heads import predictions

    scores = torch.tensor([[0.0, 0.0, 0.0, float("-inf")], [1.0, 2.0, 2.0, 0.0]])
    audio = torch.tensor([[0.1, 0.5, 0.2, 9.0], [5.0, 0.1, 0.3, 9.0]])
    assert predictions(scores).tolist() == [0, 1]
    assert predictions(scores, audio).tolist() == [1, 2]  # padding (-inf) never wins a tie
