"""Markdown table of a qmini sweep (``sweep.jsonl`` from scripts/gpu_mini/sweep.sh) for results/qmini/README.md.

Per run and split: neutral / misleading / consistent / silence accuracy, the misleading-hint follow rate,
the gap neutral - misleading (text dominance), and the held-out split when it was scored.

Usage: python recipes/qmini/sweep_table.py results/qmini/gpu/sweep.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CONDS = ("neutral", "misleading", "consistent", "silence")


def cell(split: dict, cond: str) -> str:
    if cond not in split:
        return "-"
    n, acc, _ = split[cond]
    return f"{acc:.3f} (n={n})"


def main() -> None:
    rows = [json.loads(x) for x in Path(sys.argv[1]).read_text().splitlines() if x.strip()]
    out = [
        "| run | split | " + " | ".join(CONDS) + " | misleading follow | gap (pp) | projector sha256 |",
        "|---|---|" + "---|" * len(CONDS) + "---|---|---|",
    ]
    for r in rows:
        if r.get("failed"):
            out.append(f"| {r['name']} | failed | " + " | ".join("-" * len(CONDS)) + " | - | - | - |")
            continue
        for split in ("calib", "test", "heldout"):
            if split not in r:
                continue
            s = r[split]
            follow = f"{s['misleading'][2]:.3f}" if "misleading" in s else "-"
            gap = f"{100 * r[split + '_gap']:.1f}" if split + "_gap" in r else "-"
            out.append(
                f"| {r['name']} | {split} | "
                + " | ".join(cell(s, c) for c in CONDS)
                + f" | {follow} | {gap} | `{r['projector_sha256'][:12]}` |"
            )
    print("\n".join(out))  # noqa: T201


if __name__ == "__main__":
    main()
