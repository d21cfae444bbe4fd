"""One page per model across independently trained projectors: `python -m steer_audio.report.scale`.

Input: a root with one folder per projector and, inside, one finished `evaluate` run directory per
condition (`ROOT/<projector>/<negative>/summary.json`, the layout of scripts/gpu_scale/jobs.sh; the
held-out check is `heldout-<negative>`). The page gives, per run kind, a method x projector table of
accuracy on real-audio evaluation items with the gain over the baseline and McNemar p against the
baseline and the matched random-head control, the per-condition accuracy of the headline method, the
listening-score AUC against random heads, and a count of how many (projector, method) cells beat the
baseline at p < 0.05. Every run's own page (`python -m steer_audio.report`) is written beside it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SteerAudioError
from ..evaluate.stats import mcnemar
from ..io import SUMMARY, read_json, read_jsonl, write_text
from .markdown import LEVEL, verdict
from .page import write_page

#: the order of the run kinds on the page (others follow, sorted)
KIND_ORDER = ("silence", "floor", "noise", "shuffle", "drop", "heldout-silence", "heldout-floor")
CONDITIONS = ("neutral", "consistent", "misleading")


def collect(root: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """{kind: {projector: summary}} for every finished run under `root` (each summary gets `_dir`)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for f in sorted(Path(root).glob(f"*/*/{SUMMARY}")):
        s = read_json(f)
        if "table" in s:
            out.setdefault(f.parent.name, {})[f.parent.parent.name] = s | {"_dir": str(f.parent)}
    if not out:
        raise SteerAudioError(f"{root}: no finished evaluate runs (<projector>/<negative>/{SUMMARY})")
    return out


def _kinds(runs: dict[str, Any]) -> list[str]:
    return [k for k in KIND_ORDER if k in runs] + sorted(k for k in runs if k not in KIND_ORDER)


def _cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "–"
    if r["method"] == "baseline":
        return f"{100 * r['accuracy']:.1f}"
    pb = r.get("mcnemar_vs_baseline", {}).get("p_value")
    pc = r.get("mcnemar_vs_control", {}).get("p_value")
    star = "**" if pb is not None and pb < LEVEL and r.get("gain_pp", 0.0) > 0 else ""
    ps = ", ".join(
        x
        for x in (
            f"p {pb:.2g}" if pb is not None else "",
            f"p<sub>r</sub> {pc:.2g}" if pc is not None else "",
        )
        if x
    )
    return f"{star}{100 * r['accuracy']:.1f} ({r.get('gain_pp', 0.0):+.1f}; {ps}){star}"


def text_dominance(run_dir: Path) -> dict[str, Any] | None:
    """The baseline's neutral vs misleading twins of one run, paired by base item (predictions.jsonl):
    accuracy of each, the gap, and McNemar p. None when the run has no such twins."""
    f = Path(run_dir) / "predictions.jsonl"
    if not f.is_file():
        return None
    by: dict[str, dict[str, bool]] = {}
    for r in read_jsonl(f):
        if r["method"] != "baseline":
            continue
        base, _, cond = r["id"].rpartition("-")
        by.setdefault(base, {})[cond] = bool(r["correct"])
    pairs = [(v["neutral"], v["misleading"]) for v in by.values() if "neutral" in v and "misleading" in v]
    if not pairs:
        return None
    a = np.array(pairs, dtype=int)
    return {
        "n_pairs": len(pairs),
        "neutral": float(a[:, 0].mean()),
        "misleading": float(a[:, 1].mean()),
        "gap_pp": 100 * float(a[:, 0].mean() - a[:, 1].mean()),
        "mcnemar": mcnemar(a[:, 0], a[:, 1]),
    }


def _row(s: dict[str, Any], method: str) -> dict[str, Any] | None:
    return next((r for r in s["table"] if r["method"] == method), None)


def render(title: str, runs: dict[str, dict[str, dict[str, Any]]], links: dict[str, str]) -> str:
    kinds = _kinds(runs)
    projs = sorted({p for k in kinds for p in runs[k]})
    first = next(iter(runs[kinds[0]].values()))
    proto = first["discovery"].get("protocol", {})
    out = [
        f"# {title}",
        "",
        f"- projectors: {', '.join(f'`{p}`' for p in projs)}; run kinds: {', '.join(kinds)}",
        f"- items: {proto.get('rule', 'real-audio items only')}",
        f"- selection: {proto.get('selection_rule', '–')}",
        "- cells: accuracy % on real-audio evaluation items (gain in pp over the baseline; McNemar p vs the "
        f"baseline, p<sub>r</sub> vs the matched random-head control); **bold** = better than the baseline at p < {LEVEL}",
    ]
    wins: list[str] = []
    losses: list[str] = []
    n_cells = 0
    for kind in kinds:
        by = runs[kind]
        cols = [p for p in projs if p in by]
        methods: list[str] = []
        for p in cols:
            methods += [r["method"] for r in by[p]["table"] if r["method"] not in methods]
        n = {p: _row(by[p], "baseline")["n"] for p in cols}  # type: ignore[index]
        out += ["", f"## {kind}", "", "| method | " + " | ".join(f"{p} (n={n[p]})" for p in cols) + " |"]
        out.append("|---|" + "---|" * len(cols))
        for m in methods:
            out.append(f"| {m} | " + " | ".join(_cell(_row(by[p], m)) for p in cols) + " |")
            for p in cols:
                r = _row(by[p], m)
                if r is None or m == "baseline" or "mcnemar_vs_baseline" not in r:
                    continue
                n_cells += 1
                if r["mcnemar_vs_baseline"]["p_value"] < LEVEL:
                    (wins if r["accuracy"] > _row(by[p], "baseline")["accuracy"] else losses).append(  # type: ignore[index]
                        f"{kind}/{p}/{m} ({r.get('gain_pp', 0.0):+.1f} pp)"
                    )
        out += ["", "Text dominance of the unsteered model (baseline, paired by base item):", ""]
        out += [
            "| projector | neutral | consistent | misleading | gap neutral − misleading (pp) | McNemar p | "
            "prior-follow (misleading) | silence twins: accuracy / hint followed |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for p in cols:
            b = _row(by[p], "baseline")
            td = text_dominance(Path(by[p].get("_dir", "")))
            if b is None or td is None or "by_condition" not in b:
                continue
            bc, dg = b["by_condition"], b.get("diagnostic", {}).get("silence", {})
            sil = f"{100 * dg['accuracy']:.1f} / {100 * dg['hint_followed']:.1f}" if dg else "–"
            out.append(
                f"| {p} | {100 * bc.get('neutral', float('nan')):.1f} | {100 * bc.get('consistent', float('nan')):.1f} | "
                f"{100 * bc.get('misleading', float('nan')):.1f} | {td['gap_pp']:+.1f} (n = {td['n_pairs']}) | "
                f"{td['mcnemar']['p_value']:.2g} | {100 * b.get('prior_follow_misleading', float('nan')):.1f} | {sil} |"
            )
        out += ["", "Per condition, baseline → head-guided (chosen α):", ""]
        out += [
            "| projector | " + " | ".join(CONDITIONS) + " | prior-follow (misleading) | α |",
            "|---|---|---|---|---|---|",
        ]
        for p in cols:
            b, h = _row(by[p], "baseline"), _row(by[p], "head-guided")
            if b is None or h is None or "by_condition" not in b:
                continue
            cells = [
                f"{100 * b['by_condition'].get(c, float('nan')):.1f} → {100 * h['by_condition'].get(c, float('nan')):.1f}"
                for c in CONDITIONS
            ]
            pf = f"{100 * b.get('prior_follow_misleading', float('nan')):.1f} → {100 * h.get('prior_follow_misleading', float('nan')):.1f}"
            out.append(f"| {p} | " + " | ".join(cells) + f" | {pf} | {h.get('alpha', '–')} |")
        out += ["", "Listening score (specialists) on real-audio evaluation items:", ""]
        out += [
            "| projector | AUC | random heads mean | percentile | flips n | flip test p (s higher on flips) |",
            "|---|---|---|---|---|---|",
        ]
        for p in cols:
            d = by[p]["discovery"]
            ci, cf = d.get("check_i_auc", {}), d.get("check_ii_flips", {})
            f = lambda x, spec=".3f": "–" if x is None else format(x, spec)  # noqa: E731
            out.append(
                f"| {p} | {f(ci.get('auc_specialists'))} | {f(ci.get('auc_random_mean'))} | "
                f"{f(ci.get('percentile_vs_random'), '.0f')} | {cf.get('n_flip', '–')} | {f(cf.get('p_greater'), '.3g')} |"
            )
        out += ["", "Verdicts:", ""] + [
            f"- {p}: {by[p].get('verdict') or verdict(by[p]['table'])}" for p in cols
        ]
    out += [
        "",
        "## Summary",
        "",
        f"- better than the baseline at p < {LEVEL}: {len(wins)} of {n_cells} (run kind, projector, method) cells"
        + (f": {'; '.join(wins)}" if wins else ""),
        f"- worse than the baseline at p < {LEVEL}: {len(losses)}"
        + (f": {'; '.join(losses)}" if losses else ""),
        "- no correction for the number of cells: read single wins among many cells as chance unless they repeat "
        "across projectors",
        "",
        "Each projector's own page (every method's per-condition curve, per domain, diagnostic twins, figures): "
        + ", ".join(f"[{p}]({u})" for p, u in sorted(links.items())),
    ]
    return "\n".join(out) + "\n"


def write(root: Path, out: Path, title: str, figures: set[str] | None = None) -> Path:
    """The page at `out` and each projector's page beside it; figures only of the run kinds in `figures`
    (trade-off only, as on every page), all when None."""
    runs = collect(root)
    links: dict[str, str] = {}
    for proj in sorted({p for by in runs.values() for p in by}):
        dirs = [Path(root) / proj / k for k in _kinds(runs) if proj in runs[k]]
        page = out.parent / f"{out.stem}-{proj}.md"
        write_page(f"{title}: projector {proj}", dirs, page, figures)
        links[proj] = page.name
    write_text(out, render(title, runs, links))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m steer_audio.report.scale", description=__doc__)
    ap.add_argument("root", type=Path, help="ROOT/<projector>/<negative>/ evaluate run directories")
    ap.add_argument("--out", type=Path, required=True, help="the Markdown page to write")
    ap.add_argument("--title", default="results at scale")
    ap.add_argument(
        "--figures", default=None, help="comma-separated run kinds whose figures are kept (default: all)"
    )
    a = ap.parse_args(argv)
    try:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        figs = set(a.figures.split(",")) if a.figures else None
        sys.stdout.write(f"{write(a.root, a.out, a.title, figs)}\n")
    except SteerAudioError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
