"""Figures: head-score heatmap, accuracy vs alpha on calibration (Fig. 2), per-domain bars, and the
misleading-vs-consistent trade-off as alpha grows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..io import write_bytes  # noqa: E402


def _save(fig: Any, path: Path) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    write_bytes(path, buf.getvalue())


def heatmap(r: np.ndarray, heads: list[tuple[int, int]], path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(max(4, r.shape[1] * 0.25 + 2), max(3, r.shape[0] * 0.22 + 1.5)))
    lim = float(np.abs(r).max()) or 1.0
    im = ax.imshow(r, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", origin="lower")
    for layer, h in heads:
        ax.add_patch(plt.Rectangle((h - 0.5, layer - 0.5), 1, 1, fill=False, ec="black", lw=1.2))
    ax.set_xlabel("head")
    ax.set_ylabel("decoder layer")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="r (audio mass vs correctness, calibration)")
    _save(fig, path)


def alpha_curves(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for row in rows:
        c = row.get("calib_curve")
        if c and len(c["alpha"]) > 1 and not row["method"].startswith("control"):
            ax.plot(c["alpha"], [100 * x for x in c["accuracy"]], marker="o", ms=3, label=row["method"])
    ax.set_xlabel("alpha")
    ax.set_ylabel("calibration accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


def domain_bars(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    keep = [
        r for r in rows if r["method"] in ("baseline", "head-guided", "single-layer", "head-level/specialist")
    ]
    domains = sorted(keep[0]["by_domain"]) if keep else []
    fig, ax = plt.subplots(figsize=(6, 3.5))
    w = 0.8 / max(1, len(keep))
    for i, r in enumerate(keep):
        ax.bar(
            np.arange(len(domains)) + i * w, [100 * r["by_domain"][d] for d in domains], w, label=r["method"]
        )
    ax.set_xticks(np.arange(len(domains)) + w * (len(keep) - 1) / 2, domains)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, path)


def tradeoff(rows: list[dict[str, Any]], path: Path, title: str) -> bool:
    """Misleading vs consistent accuracy as alpha grows, one curve per method (calibration and evaluation
    panels; the calibration-chosen alpha starred). False (nothing written) without listen-bench curves."""
    curved = [
        r
        for r in rows
        if r.get("condition_curves")
        and len(r["condition_curves"]["alpha"]) > 1
        and all(
            k in r["condition_curves"].get(s, {})
            for s in ("calibration", "evaluation")
            for k in ("misleading", "consistent")
        )
    ]
    if not curved:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharex=True, sharey=True)
    base = next((r for r in rows if r["method"] == "baseline"), None)
    for ax, split in zip(axes, ("calibration", "evaluation"), strict=True):
        for r in curved:
            cc = r["condition_curves"]
            xs = [100 * x for x in cc[split]["consistent"]["accuracy"]]
            ys = [100 * y for y in cc[split]["misleading"]["accuracy"]]
            (line,) = ax.plot(xs, ys, marker="o", ms=3, lw=1, label=r["method"])
            if r.get("alpha") in cc["alpha"]:
                i = cc["alpha"].index(r["alpha"])
                ax.plot(xs[i], ys[i], marker="*", ms=11, color=line.get_color(), mec="black", mew=0.5)
            ax.annotate(f"α={cc['alpha'][-1]:g}", (xs[-1], ys[-1]), fontsize=6, color=line.get_color())
        if split == "evaluation" and base is not None and "by_condition" in base:
            bc = base["by_condition"]
            ax.plot(100 * bc["consistent"], 100 * bc["misleading"], "kx", ms=9, label="baseline")
        n_c = curved[0]["condition_curves"][split]["consistent"]["n"]
        n_m = curved[0]["condition_curves"][split]["misleading"]["n"]
        ax.set_title(f"{split} (n = {n_c} consistent, {n_m} misleading)", fontsize=9)
        ax.set_xlabel("consistent-hint accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("misleading-hint accuracy (%)")
    axes[1].legend(fontsize=6, loc="best")
    fig.suptitle(title + "  (each curve: alpha from 0 upwards; ★ chosen on calibration)", fontsize=9)
    _save(fig, path)
    return True
