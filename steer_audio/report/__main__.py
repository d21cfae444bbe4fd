"""`python -m steer_audio.report --out PAGE.md [--title T] RUN_DIR [RUN_DIR ...]`: one results page per
model from `evaluate` run directories (report/page.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import SteerAudioError
from .page import write_page


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m steer_audio.report", description=__doc__)
    ap.add_argument("runs", nargs="+", type=Path, help="evaluate run directories (one per negative)")
    ap.add_argument("--out", type=Path, required=True, help="the Markdown page to write")
    ap.add_argument("--title", default=None, help="page title (default: the model name)")
    a = ap.parse_args(argv)
    try:
        from .page import load_runs

        title = a.title or f"{load_runs(a.runs[:1])[0][1]['model']['spec']['name']}: results"
        a.out.parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.write(f"{write_page(title, a.runs, a.out)}\n")
    except SteerAudioError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
