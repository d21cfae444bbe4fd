"""Eqs. 1-3 of the paper (METHOD.md §§1-3): head scores, specialist selection, listening score, checks."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats

from ..errors import SteerAudioError

log = logging.getLogger(__name__)


def head_name(layer: int, head: int) -> str:
    return f"L{layer:02d}H{head:02d}"


def predictions(logits: torch.Tensor, tiebreak: torch.Tensor | None = None) -> np.ndarray:
    """argmax over the candidate logits (padding is -inf). Exact ties go to the option with the highest
    `tiebreak` score (e.g. the audio-pass logits), else to the first option."""
    x = logits.float()
    if tiebreak is None:
        return x.argmax(-1).numpy()
    tied = x == x.max(-1, keepdim=True).values
    return torch.where(tied, tiebreak.float(), torch.full_like(x, float("-inf"))).argmax(-1).numpy()


def correctness(pred: np.ndarray, correct_sets: list[frozenset[int]]) -> np.ndarray:
    return np.array([int(p) in c for p, c in zip(pred, correct_sets, strict=True)], dtype=np.float64)


def point_biserial(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of x [N, ...] with the binary vector c [N] (0 where x is constant)."""
    if c.min() == c.max():
        raise SteerAudioError(
            "the calibration split has only one class of correctness (all right or all wrong): r is undefined"
        )
    flat = x.reshape(x.shape[0], -1).astype(np.float64)
    xc = flat - flat.mean(0)
    cc = c - c.mean()
    num = (xc * cc[:, None]).sum(0)
    den = np.sqrt((xc**2).sum(0) * (cc**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return r.reshape(x.shape[1:])


@dataclass(frozen=True)
class HeadSet:
    """A set of heads with their scores; induces the layer set L_S and weights w_l = n_l / K (Eq. 4)."""

    heads: tuple[tuple[int, int], ...]
    r: tuple[float, ...]

    @property
    def k(self) -> int:
        return len(self.heads)

    def layer_weights(self) -> dict[int, float]:
        counts: dict[int, int] = {}
        for layer, _ in self.heads:
            counts[layer] = counts.get(layer, 0) + 1
        return {layer: n / self.k for layer, n in sorted(counts.items())}

    def names(self) -> list[str]:
        return [head_name(layer, h) for layer, h in self.heads]

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {"head": head_name(layer, h), "layer": layer, "index": h, "r": round(float(r), 6), "rank": i + 1}
            for i, ((layer, h), r) in enumerate(zip(self.heads, self.r, strict=True))
        ]


def select(r: np.ndarray, k: int, ranking: str = "abs") -> HeadSet:
    n_layers, n_heads = r.shape
    if not 1 <= k <= n_layers * n_heads:
        raise SteerAudioError(
            f"K={k} is outside 1..{n_layers * n_heads} (the model has {n_layers * n_heads} heads)"
        )
    key = np.abs(r) if ranking == "abs" else r if ranking == "signed" else None
    if key is None:
        raise SteerAudioError(f"unknown ranking {ranking!r}: use abs or signed")
    flat = key.reshape(-1)
    order = sorted(range(flat.size), key=lambda i: (-flat[i], i))[:k]
    heads = tuple((int(i // n_heads), int(i % n_heads)) for i in order)
    return HeadSet(heads, tuple(float(r[h]) for h in heads))


def random_heads(r: np.ndarray, k: int, rng: np.random.Generator) -> HeadSet:
    n_layers, n_heads = r.shape
    idx = rng.choice(n_layers * n_heads, size=k, replace=False)
    heads = tuple((int(i // n_heads), int(i % n_heads)) for i in idx)
    return HeadSet(heads, tuple(float(r[h]) for h in heads))


def listening_score(mass: np.ndarray, hs: HeadSet, normalise: bool = True) -> np.ndarray:
    """s(x) = sum_{(l,h) in S} r_{l,h} a_{l,h}(x)  (divided by sum |r| when `normalise`; Eq. 3)."""
    w = np.array(hs.r)
    a = np.stack([mass[:, layer, h] for layer, h in hs.heads], 1).astype(np.float64)
    s = a @ w
    if normalise:
        s = s / max(np.abs(w).sum(), 1e-12)
    return s


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """Rank-based ROC AUC (ties count one half) = Mann-Whitney U / (n1 n0)."""
    pos, neg = score[label == 1], score[label == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = stats.rankdata(np.concatenate([pos, neg]))
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def check_auc(
    mass_eval: np.ndarray,
    c_eval: np.ndarray,
    r: np.ndarray,
    hs: HeadSet,
    draws: int,
    seed: int,
    normalise: bool,
) -> dict[str, Any]:
    spec_auc = auc(listening_score(mass_eval, hs, normalise), c_eval)
    rng = np.random.default_rng(seed)
    rand = np.array(
        [auc(listening_score(mass_eval, random_heads(r, hs.k, rng), normalise), c_eval) for _ in range(draws)]
    )
    finite = rand[np.isfinite(rand)]
    return {
        "auc_specialists": spec_auc,
        "auc_random_mean": float(finite.mean()) if finite.size else None,
        "auc_random_sd": float(finite.std(ddof=1)) if finite.size > 1 else None,
        "auc_random_q05_q50_q95": [float(q) for q in np.quantile(finite, [0.05, 0.5, 0.95])]
        if finite.size
        else None,
        "percentile_vs_random": float((finite < spec_auc).mean() * 100) if finite.size else None,
        "draws": draws,
        "seed": seed,
    }


def check_flips(score: np.ndarray, flipped: np.ndarray) -> dict[str, Any]:
    f, nf = score[flipped], score[~flipped]
    res: dict[str, Any] = {
        "n_flip": int(flipped.sum()),
        "n_nonflip": int((~flipped).sum()),
        "mean_flip": float(f.mean()) if f.size else None,
        "mean_nonflip": float(nf.mean()) if nf.size else None,
    }
    if f.size and nf.size:
        u = stats.mannwhitneyu(f, nf, alternative="greater")
        res |= {"mannwhitney_u": float(u.statistic), "p_greater": float(u.pvalue)}
    else:
        res |= {"mannwhitney_u": None, "p_greater": None}
    return res
