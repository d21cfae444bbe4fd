"""The Markdown report: the paper's tables with our numbers, the published figures beside them (quoted)."""

from __future__ import annotations

from typing import Any

PUBLISHED = {
    "qwen2-audio": {
        "baseline": 49.20,
        "head-level/random": 49.42,
        "single-layer": 53.82,
        "head-level/specialist": 54.30,
        "head-guided": 57.25,
    },
    "r1-aqa": {
        "baseline": 64.50,
        "head-level/random": 64.02,
        "single-layer": 65.21,
        "head-level/specialist": 67.80,
        "head-guided": 69.40,
    },
}
LABELS = {
    "baseline": "Baseline (no intervention)",
    "head-level/random": "Head-level steering (random heads)",
    "single-layer": "Best single layer steering",
    "head-level/specialist": "Head-level steering (specialist)",
    "head-guided": "Head-guided layer steering",
}


def fmt(x: float | None, spec: str = ".3f") -> str:
    """A number, or 'n/a' when undefined (None / NaN: e.g. an AUC on a split with one class)."""
    if x is None or (isinstance(x, float) and x != x):
        return "n/a"
    return format(x, spec)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _p(row: dict[str, Any]) -> str:
    m = row.get("mcnemar_vs_baseline")
    return "–" if not m else f"{m['p_value']:.3g}{' (exact)' if m['exact'] else ''}"


def render(summary: dict[str, Any]) -> str:
    rows = summary["table"]
    model = summary["model"]["spec"]["name"]
    pub = PUBLISHED.get(model)
    warn = ""
    if summary["model"]["random_weights"]:
        warn = "\n> **RANDOM WEIGHTS.** This model is a tiny randomly initialised test model: every number below is a smoke test of the pipeline, not a result.\n"
    out = [
        f"# steer-audio report: {model}",
        warn,
        f"- data: `{summary['data']['source']}` (sha256 `{summary['data']['sha256']}`); split: {summary['splits']['how']}",
        f"- calibration n = {summary['splits']['n_calib']}, evaluation n = {summary['splits']['n_eval']} (missing audio: {summary['splits']['n_eval_missing']}, counted wrong)",
        f"- negative: {summary['negative']}; prompt scoring: {summary['model']['prompt']['scoring']}; label tokens: `{summary['label_tokens']}`",
        f"- alpha grid (chosen on calibration only): {summary['config']['alphas']}",
        "",
        "## Table 1: accuracy (%)",
        "",
        "| method | ours | 95% CI | gain (pp) | McNemar p | chosen | published (quoted) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["method"] not in LABELS:
            continue
        chosen = ", ".join(f"{k}={r[k]}" for k in ("layer", "alpha", "K") if k in r)
        q = f"{pub[r['method']]:.2f}" if pub else "–"
        gain = f"{r['gain_pp']:+.2f}" if "gain_pp" in r else ""
        out.append(
            f"| {LABELS[r['method']]} | {_pct(r['accuracy'])} | {_pct(r['ci95'][0])}–{_pct(r['ci95'][1])} | {gain} | {_p(r)} | {chosen} | {q} |"
        )
    out += ["", "## Table 2: accuracy by domain (%)", ""]
    base = next(r for r in rows if r["method"] == "baseline")
    hg = next((r for r in rows if r["method"] == "head-guided"), None)
    out += ["| domain | baseline | head-guided |", "|---|---|---|"]
    for d in sorted(base["by_domain"]):
        out.append(f"| {d} | {_pct(base['by_domain'][d])} | {_pct(hg['by_domain'][d]) if hg else '–'} |")
    if "by_condition" in base:
        conds = sorted(base["by_condition"])
        out += [
            "",
            "## Accuracy by condition (%) and prior-follow on misleading items (%)",
            "",
            "| method | " + " | ".join(conds) + " | prior followed |",
            "|---|" + "---|" * (len(conds) + 1),
        ]
        for r in rows:
            if r["method"].startswith("control/") or "by_condition" not in r:
                continue
            cells = " | ".join(_pct(r["by_condition"].get(k)) for k in conds)
            out.append(f"| {r['method']} | {cells} | {_pct(r.get('prior_follow_misleading'))} |")
    sweep = summary.get("k_sweep")
    if sweep:
        out += [
            "",
            "## Table 3: gain over baseline (pp), matched random heads (mean ± sd over seeds) vs specialists",
            "",
            "| K | random | specialists | alpha (spec.) |",
            "|---|---|---|---|",
        ]
        for s in sweep:
            out.append(
                f"| {s['K']} | {100 * s['random_gain_mean']:+.2f} ± {100 * s['random_gain_sd']:.2f} | {100 * s['specialist_gain']:+.2f} | {s['specialist_alpha']} |"
            )
        out += [
            "",
            "## Table 4: induced specialist layer sets",
            "",
            "| K | layers | |L_S| |",
            "|---|---|---|",
        ]
        for s in sweep:
            out.append(f"| {s['K']} | {', '.join(map(str, s['layer_set']))} | {s['n_layers']} |")
    out += [
        "",
        "## Other methods and direction controls",
        "",
        "| method | accuracy | gain (pp) | McNemar p | params |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if r["method"] in LABELS:
            continue
        params = ", ".join(
            f"{k}={r[k]}" for k in ("alpha", "layer", "K", "acc_mean", "acc_sd", "seeds") if k in r
        )
        out.append(
            f"| {r['method']} | {_pct(r['accuracy'])} | {r.get('gain_pp', 0):+.2f} | {_p(r)} | {params} |"
        )
    perm = [r for r in rows if r.get("option_permutations")]
    if perm:
        n_rot = perm[0]["option_permutations"]["rotations"] + 1
        out += [
            "",
            f"## Position-bias control: accuracy over {n_rot} rotated option orders (%)",
            "",
            "| method | original order | mean over orders | per rotation |",
            "|---|---|---|---|",
        ]
        for r in perm:
            p = r["option_permutations"]
            out.append(
                f"| {r['method']} | {_pct(r['accuracy'])} | {_pct(p['accuracy_mean_over_orders'])} | "
                f"{', '.join(_pct(a) for a in p['accuracy_by_rotation'])} |"
            )
    d = summary["discovery"]
    ci, cf = d["check_i_auc"], d["check_ii_flips"]
    out += [
        "",
        f"## Listening score (specialists, K = {d['k']})",
        "",
        f"- specialists: {', '.join(d['heads'])}",
        f"- (i) AUC for correctness on the evaluation split: {fmt(ci['auc_specialists'])}; random heads ({ci['draws']} draws): "
        f"mean {fmt(ci['auc_random_mean'])}, 5/50/95% {', '.join(fmt(q) for q in (ci['auc_random_q05_q50_q95'] or []))}; "
        f"specialists at percentile {fmt(ci['percentile_vs_random'], '.0f')}",
        f"- (ii) flips (prediction changes under the negative): n = {cf['n_flip']}, mean s = {fmt(cf['mean_flip'], '.4f')}; "
        f"non-flips n = {cf['n_nonflip']}, mean s = {fmt(cf['mean_nonflip'], '.4f')}; Mann–Whitney U one-sided p = {fmt(cf['p_greater'], '.3g')}",
        "",
        "Figures: `heads_r.png` (r heatmap, specialists boxed), `alpha_curve.png` (Figure 2: calibration accuracy vs alpha), `domains.png`.",
        "",
        "Published figures are quoted from the paper (MMAU test-mini, string-match scoring of generated text); ours use the logit protocol and will differ.",
    ]
    return "\n".join(out) + "\n"
