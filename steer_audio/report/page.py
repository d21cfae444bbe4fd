"""One results page per model from several `evaluate` run directories (typically one per negative).

`python -m steer_audio.report --out PAGE.md RUN_DIR [RUN_DIR ...]` writes PAGE.md and, beside it, each run's
trade-off and alpha figures (`<page>-<negative>-tradeoff.png`, ...). The page opens with the protocol and
selection rule, a verdict sentence per run, and the cross-run table (method x negative: accuracy on
real-audio items, McNemar p vs the baseline and vs the matched random-head control, n); then every run's own
report (overall, per condition at every alpha, per domain, diagnostic twins, listening-score AUC vs random
heads), headings demoted one level."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import SteerAudioError
from ..io import SUMMARY, read_json, write_bytes, write_text
from . import markdown

FIGURES = ("tradeoff.png", "alpha_curve.png", "heads_r.png", "domains.png")


def load_runs(dirs: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    runs = []
    for d in dirs:
        f = Path(d) / SUMMARY
        if not f.exists():
            raise SteerAudioError(f"{d}: no {SUMMARY} (not a finished evaluate run directory)")
        s = read_json(f)
        if "table" not in s:
            raise SteerAudioError(f"{d}: {SUMMARY} has no results table (a discover run, not evaluate)")
        runs.append((Path(d), s))
    return runs


def _label(run: Path, s: dict[str, Any]) -> str:
    """The run's column label: its negative, or its folder's name where that names the negative and more
    (`heldout-silence` beside `silence`: two runs of one negative on one page keep apart)."""
    neg = s.get("negative")
    if not neg:
        return run.name
    return run.name if run.name != neg and neg in run.name else str(neg)


def _cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "–"
    pb = r.get("mcnemar_vs_baseline")
    pc = r.get("mcnemar_vs_control")
    ps = "; ".join(
        x
        for x in (
            f"p<sub>base</sub> {pb['p_value']:.2g}" if pb else "",
            f"p<sub>rand</sub> {pc['p_value']:.2g}" if pc else "",
        )
        if x
    )
    return f"{100 * r['accuracy']:.2f}" + (f" ({ps})" if ps else "")


def render_page(
    title: str,
    runs: list[tuple[Path, dict[str, Any]]],
    figure_prefix: str,
    figure_runs: set[str] | None = None,
) -> str:
    if not runs:
        raise SteerAudioError("no run directories given")
    first = runs[0][1]
    proto = first["discovery"].get("protocol", {})
    labels = [_label(p, s) for p, s in runs]
    out = [
        f"# {title}",
        "",
        f"- model: `{first['model']['spec']['name']}`; data: `{first['data']['source']}` "
        f"(sha256 `{first['data']['sha256']}`)",
        f"- runs: {', '.join(f'`{p}` ({lab})' for (p, _), lab in zip(runs, labels, strict=True))}",
        f"- items: {proto.get('rule', 'real-audio items only')}",
        f"- selection: {proto.get('selection_rule', '–')}",
        *(
            ["", "> **RANDOM WEIGHTS.** A randomly initialised test model: every number is a smoke test."]
            if first["model"]["random_weights"]
            else []
        ),
        "",
        "## Verdicts",
        "",
    ]
    out += [
        f"- **{lab}**: {s.get('verdict') or markdown.verdict(s['table'])}"
        for (_, s), lab in zip(runs, labels, strict=True)
    ]
    methods: list[str] = []
    for _, s in runs:
        methods += [r["method"] for r in s["table"] if r["method"] not in methods]
    n = {
        lab: next(r["n"] for r in s["table"] if r["method"] == "baseline")
        for (_, s), lab in zip(runs, labels, strict=True)
    }
    out += [
        "",
        "## Accuracy (%) on real-audio evaluation items, by negative (McNemar p vs baseline / vs matched random heads)",
        "",
        "| method | " + " | ".join(f"{lab} (n={n[lab]})" for lab in labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for m in methods:
        cells = [_cell(next((r for r in s["table"] if r["method"] == m), None)) for _, s in runs]
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    for (run, s), lab in zip(runs, labels, strict=True):
        figs = [f for f in FIGURES if (run / f).exists() and (figure_runs is None or lab in figure_runs)]
        out += ["", f"## Run: negative = {lab} (`{run}`)", ""]
        out += [f"![{lab} {f}]({figure_prefix}-{lab}-{f})" for f in figs if f == "tradeoff.png"]
        body = markdown.render(s).splitlines()
        out += ["#" + line if line.startswith("#") else line for line in body[1:]]
    return "\n".join(out) + "\n"


def write_page(title: str, dirs: list[Path], out: Path, figure_runs: set[str] | None = None) -> Path:
    """The page at `out`, figures copied beside it (only those of the runs labelled in `figure_runs`,
    when given). Returns `out`."""
    runs = load_runs(dirs)
    prefix = out.stem
    for run, s in runs:
        lab = _label(run, s)
        if figure_runs is not None and lab not in figure_runs:
            continue
        for f in FIGURES:
            if (run / f).exists():
                write_bytes(out.parent / f"{prefix}-{lab}-{f}", (run / f).read_bytes())
    write_text(out, render_page(title, runs, prefix, figure_runs))
    return out
