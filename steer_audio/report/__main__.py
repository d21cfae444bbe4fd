"""`python -m steer_audio.report [COMMAND] ...`: reports built from run directories.

page (the default: `python -m steer_audio.report --out PAGE.md [--title T] RUN_DIR ...` names no command)
    one results page per model from `evaluate` run directories (report/page.py)
negatives OUTS --out PAGE.md
    every method x every negative of the `evaluate` runs OUTS/<negative>/ (report/tables.py)
conditions RUN_DIR [--out PAGE.md]
    an `eval-mini` run: accuracy and prior-follow per condition, task and template, McNemar neutral vs
    misleading (report/tables.py)
scale ROOT --out PAGE.md [--title T]
    one page per model across trained projectors, ROOT/<projector>/<negative>/ (report/scale.py)"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import SteerAudioError
from ..io import write_text


def _page(argv: list[str]) -> str:
    from .page import load_runs, write_page

    ap = argparse.ArgumentParser(prog="python -m steer_audio.report [page]")
    ap.add_argument("runs", nargs="+", type=Path, help="evaluate run directories (one per negative)")
    ap.add_argument("--out", type=Path, required=True, help="the Markdown page to write")
    ap.add_argument("--title", default=None, help="page title (default: the model name)")
    a = ap.parse_args(argv)
    title = a.title or f"{load_runs(a.runs[:1])[0][1]['model']['spec']['name']}: results"
    a.out.parent.mkdir(parents=True, exist_ok=True)
    return f"{write_page(title, a.runs, a.out)}\n"


def _negatives(argv: list[str]) -> str:
    from .tables import negatives_table

    ap = argparse.ArgumentParser(prog="python -m steer_audio.report negatives")
    ap.add_argument("outs", type=Path, help="the folder of the runs, one per negative: OUTS/silence/, ...")
    ap.add_argument("--out", type=Path, required=True, help="the Markdown page to write")
    a = ap.parse_args(argv)
    text = negatives_table(a.outs)
    write_text(a.out, text)
    return text + "\n"


def _conditions(argv: list[str]) -> str:
    from .tables import condition_tables, read_predictions

    ap = argparse.ArgumentParser(prog="python -m steer_audio.report conditions")
    ap.add_argument("run", type=Path, help="an eval-mini run directory (its predictions.jsonl)")
    ap.add_argument("--out", type=Path, default=None, help="also write the tables to this file")
    a = ap.parse_args(argv)
    text = condition_tables(read_predictions(a.run))
    if a.out is not None:
        write_text(a.out, text)
    return text


def _scale(argv: list[str]) -> str:
    from .scale import main

    code = main(argv)  # report/scale.py's own command line (`python -m steer_audio.report.scale`)
    if code:
        raise SystemExit(code)
    return ""


#: command -> its function of the remaining arguments, returning what goes to stdout
COMMANDS: dict[str, Callable[[list[str]], str]] = {
    "page": _page,
    "negatives": _negatives,
    "conditions": _conditions,
    "scale": _scale,
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write(f"{__doc__}\n")
        return 0
    name, rest = (args[0], args[1:]) if args and args[0] in COMMANDS else ("page", args)
    try:
        sys.stdout.write(COMMANDS[name](rest))
    except SteerAudioError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
