"""Paired statistics: McNemar (exact binomial when discordant pairs are few), bootstrap intervals."""

from __future__ import annotations

from typing import Any

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar as _mcnemar

EXACT_BELOW = 25


def mcnemar(base: np.ndarray, new: np.ndarray) -> dict[str, Any]:
    """base, new: 0/1 correctness per item (paired)."""
    b = int(((base == 1) & (new == 0)).sum())
    c = int(((base == 0) & (new == 1)).sum())
    table = [[int(((base == 1) & (new == 1)).sum()), b], [c, int(((base == 0) & (new == 0)).sum())]]
    exact = (b + c) < EXACT_BELOW
    res = _mcnemar(table, exact=exact, correction=True)
    return {
        "b_base_only": b,
        "c_new_only": c,
        "exact": exact,
        "statistic": float(res.statistic),
        "p_value": float(res.pvalue),
    }


def bootstrap_ci(x: np.ndarray, draws: int = 1000, seed: int = 0, level: float = 0.95) -> list[float]:
    if len(x) == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(draws, len(x)))
    m = x[idx].mean(1)
    lo, hi = np.quantile(m, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]
