"""Figures: head-score heatmap, accuracy vs alpha on calibration (Fig. 2), per-domain bars."""

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
