"""Markdown tables of an `eval-mini` run: accuracy and prior-follow per condition, task and template, and the
exact McNemar test of neutral against misleading on the same base items.

Usage: python scripts/mini_tables.py RUN_DIR   (RUN_DIR holds predictions.jsonl from `eval-mini --out RUN_DIR`)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from scipy.stats import binomtest

from steer_audio.train.train_mini import summarize

CONDS = ("neutral", "misleading", "consistent", "silence")


def _base(p: dict) -> str:
    return p["id"].rsplit("-", 1)[0]


def _cells(rows: list[dict]) -> list[str]:
    s = summarize(rows)  # per condition: n, accuracy, prior_follow
    out = [f"{s[c]['accuracy']:.3f} (n={s[c]['n']})" if c in s else "–" for c in CONDS]
    out += [f"{s[c]['prior_follow']:.3f}" if c in s else "–" for c in ("misleading", "silence")]
    return out


def main(run: Path) -> None:
    preds = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    head = "neutral acc | misleading acc | consistent acc | silence acc | misleading prior-follow | silence prior-follow"
    print(f"| {head} |\n|{'---|' * 6}\n| {' | '.join(_cells(preds))} |\n")
    for key in ("task", "template"):
        print(f"| {key} | {head} |\n|{'---|' * 7}")
        for v in sorted({p[key] for p in preds}):
            print(f"| {v} | {' | '.join(_cells([p for p in preds if p[key] == v]))} |")
        print()
    neu = {_base(p): p["correct"] for p in preds if p["condition"] == "neutral"}
    mis = {_base(p): p["correct"] for p in preds if p["condition"] == "misleading"}
    both = sorted(set(neu) & set(mis))
    b = sum(neu[k] and not mis[k] for k in both)  # right without the hint, wrong with the misleading hint
    c = sum(mis[k] and not neu[k] for k in both)
    p = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    n_acc = sum(neu[k] for k in both) / len(both)
    m_acc = sum(mis[k] for k in both) / len(both)
    k = sum(neu.values())
    chance = binomtest(k, len(neu), 0.25, alternative="greater").pvalue
    print(
        f"neutral {n_acc:.3f} vs misleading {m_acc:.3f} on {len(both)} base items: gap {100 * (n_acc - m_acc):.1f} pp; "
        f"discordant {b} vs {c}, exact McNemar p = {p:.2g}; neutral vs chance 0.25: one-sided binomial p = {chance:.2g}"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
