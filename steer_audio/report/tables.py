"""Markdown tables read from run directories (`python -m steer_audio.report negatives | conditions`):

* `negatives_table`: every method x every negative of `evaluate` runs OUTS/<negative>/ (issue 7's table:
  accuracy overall and per condition, prior followed, McNemar vs the baseline; alpha chosen on calibration);
* `condition_tables`: an `eval-mini` run's predictions.jsonl, accuracy and prior-follow per condition, task
  and template, and the exact McNemar test of neutral against misleading on the same base items."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import SteerAudioError
from ..io import read_json

#: the negatives of the table, in its row order (data/audio.py's NEGATIVES)
NEGATIVE_ORDER = ("silence", "noise", "shuffle", "drop")
CONDITIONS = ("neutral", "misleading", "consistent", "silence")


def _summary(run: Path) -> dict[str, Any]:
    path = run / "summary.json"
    if not path.is_file():
        raise SteerAudioError(f"{run}: no summary.json (not an evaluate run directory)")
    return read_json(path)


def negatives_table(outs: Path, negatives: Sequence[str] = NEGATIVE_ORDER) -> str:
    """The page of `scripts/negatives_table.sh`: one row per (negative, method), the direction controls left
    out; n from the last run's splits."""
    rows = [
        "| negative | method | alpha | accuracy | neutral | misleading | consistent | silence | prior followed | McNemar p |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    s: dict[str, Any] = {}
    for neg in negatives:
        s = _summary(Path(outs) / neg)
        for r in s["table"]:
            if r["method"].startswith("control/"):
                continue
            c = r.get("by_condition", {})
            p = r.get("mcnemar_vs_baseline", {}).get("p_value")
            cells = [f"{100 * c[k]:.1f}" if k in c else "–" for k in CONDITIONS]
            prior = 100 * r.get("prior_follow_misleading", float("nan"))
            rows.append(
                f"| {neg} | {r['method']} | {r.get('alpha', '')} | {100 * r['accuracy']:.1f} | "
                + " | ".join(cells)
                + f" | {prior:.1f} | {'' if p is None else f'{p:.3g}'} |"
            )
    n = s["splits"]
    return (
        f"# mini: methods x negatives on listen-bench (n_calib = {n['n_calib']}, n_test = {n['n_eval']})\n\n"
        "Made by `bash scripts/negatives_table.sh` (alpha chosen on the calibration split; accuracy on the test split).\n\n"
        + "\n".join(rows)
        + "\n"
    )


def _base(p: dict) -> str:
    return p["id"].rsplit("-", 1)[0]


def _cells(rows: list[dict]) -> list[str]:
    from ..train.harness import summarize

    s = summarize(rows)  # per condition: n, accuracy, prior_follow
    out = [f"{s[c]['accuracy']:.3f} (n={s[c]['n']})" if c in s else "–" for c in CONDITIONS]
    out += [f"{s[c]['prior_follow']:.3f}" if c in s else "–" for c in ("misleading", "silence")]
    return out


def condition_tables(preds: list[dict]) -> str:
    """An `eval-mini` run's tables (its predictions.jsonl rows) and the neutral-vs-misleading McNemar line."""
    from scipy.stats import binomtest

    head = "neutral acc | misleading acc | consistent acc | silence acc | misleading prior-follow | silence prior-follow"
    lines = [f"| {head} |", f"|{'---|' * 6}", f"| {' | '.join(_cells(preds))} |", ""]
    for key in ("task", "template"):
        lines += [f"| {key} | {head} |", f"|{'---|' * 7}"]
        for v in sorted({p[key] for p in preds}):
            lines.append(f"| {v} | {' | '.join(_cells([p for p in preds if p[key] == v]))} |")
        lines.append("")
    neu = {_base(p): p["correct"] for p in preds if p["condition"] == "neutral"}
    mis = {_base(p): p["correct"] for p in preds if p["condition"] == "misleading"}
    both = sorted(set(neu) & set(mis))
    if not both:
        raise SteerAudioError("no base item has both a neutral and a misleading prediction")
    b = sum(neu[k] and not mis[k] for k in both)  # right without the hint, wrong with the misleading hint
    c = sum(mis[k] and not neu[k] for k in both)
    p = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    n_acc = sum(neu[k] for k in both) / len(both)
    m_acc = sum(mis[k] for k in both) / len(both)
    k = sum(neu.values())
    chance = binomtest(k, len(neu), 0.25, alternative="greater").pvalue
    lines.append(
        f"neutral {n_acc:.3f} vs misleading {m_acc:.3f} on {len(both)} base items: gap {100 * (n_acc - m_acc):.1f} pp; "
        f"discordant {b} vs {c}, exact McNemar p = {p:.2g}; neutral vs chance 0.25: one-sided binomial p = {chance:.2g}"
    )
    return "\n".join(lines) + "\n"


def read_predictions(run: Path) -> list[dict]:
    path = Path(run) / "predictions.jsonl"
    if not path.is_file():
        raise SteerAudioError(f"{run}: no predictions.jsonl (give the --out folder of an eval-mini run)")
    return [json.loads(line) for line in path.read_text().splitlines()]
