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


def _p(row: dict[str, Any], key: str = "mcnemar_vs_baseline") -> str:
    m = row.get(key)
    return "–" if not m else f"{m['p_value']:.3g}{' (exact)' if m['exact'] else ''}"


#: the significance level of the verdict sentence (two-sided McNemar)
LEVEL = 0.05
#: the method the verdict is about first (the paper's), else the first steering row
HEADLINE_METHOD = "head-guided"
NOT_STEERING = ("baseline", "random-layer")


def _chosen(r: dict[str, Any]) -> str:
    keys = ("layer", "alpha", "K", "gate_quantile")
    return ", ".join(f"{k}={r[k]}" for k in keys if k in r)


def _is_steering(r: dict[str, Any]) -> bool:
    return r["method"] not in NOT_STEERING and not r["method"].startswith("control/")


def verdict(rows: list[dict[str, Any]]) -> str:
    """One plain sentence: did steering beat the baseline and the matched random-head control, with p."""
    base = next(r for r in rows if r["method"] == "baseline")
    steer = [r for r in rows if _is_steering(r)]
    if not steer:
        return f"No steering method was run; the baseline scored {_pct(base['accuracy'])}% (n = {base['n']})."
    hg = next((r for r in steer if r["method"] == HEADLINE_METHOD), steer[0])
    pb = hg["mcnemar_vs_baseline"]["p_value"]
    beat_b = hg["accuracy"] > base["accuracy"] and pb < LEVEL
    ctrl = hg.get("mcnemar_vs_control")
    ctrl_acc = next((r["accuracy"] for r in rows if r["method"] == "random-layer"), None)
    sig = [
        r["method"]
        for r in steer
        if r["accuracy"] > base["accuracy"] and r["mcnemar_vs_baseline"]["p_value"] < LEVEL
    ]
    what = (
        f"{hg['method']} steering ({_chosen(hg)}, chosen on calibration) scored {_pct(hg['accuracy'])}% on "
        f"{hg['n']} real-audio evaluation items against the baseline's {_pct(base['accuracy'])}% "
        f"(McNemar p = {pb:.3g})"
    )
    if ctrl is not None and ctrl_acc is not None:
        pc = ctrl["p_value"]
        beat_c = hg["accuracy"] > ctrl_acc and pc < LEVEL
        what += f" and the matched random-head control's {_pct(ctrl_acc)}% (p = {pc:.3g})"
    else:
        beat_c = False
        what += " (no matched random-head control was run)"
    if beat_b and beat_c:
        head = "Steering beat both the baseline and the matched random-head control: "
    elif beat_b:
        head = "Steering beat the baseline but not the matched random-head control: "
    else:
        head = "Steering did not beat the baseline" + (
            " or the matched random-head control: " if ctrl is not None else ": "
        )
    tail = (
        f"; no steering method was significantly better than the baseline (all p >= {LEVEL})."
        if not sig
        else f"; significantly better than the baseline at p < {LEVEL}: {', '.join(sig)}."
    )
    return head + what + tail


def render(summary: dict[str, Any]) -> str:
    rows = summary["table"]
    model = summary["model"]["spec"]["name"]
    pub = PUBLISHED.get(model)
    d = summary["discovery"]
    proto = d.get("protocol", {})
    warn = ""
    if summary["model"]["random_weights"]:
        warn = "\n> **RANDOM WEIGHTS.** This model is a tiny randomly initialised test model: every number below is a smoke test of the pipeline, not a result.\n"
    base = next(r for r in rows if r["method"] == "baseline")
    out = [
        f"# steer-audio report: {model}",
        warn,
        f"- data: `{summary['data']['source']}` (sha256 `{summary['data']['sha256']}`); split: {summary['splits']['how']}",
        f"- negative: {summary['negative']}; prompt scoring: {summary['model']['prompt']['scoring']}; label tokens: `{summary['label_tokens']}`",
        f"- alpha grid: {summary['config']['alphas']}",
        "",
        "## Protocol (fixed before the numbers)",
        "",
        f"- Items: {proto.get('rule', 'real-audio items only')}. Diagnostic twins never enter D_cal, r, the "
        "specialist set, the listening checks, the choice of alpha/layer/threshold or the headline numbers; "
        "they are scored at the chosen configuration in the diagnostic table below.",
        f"- Selection: {proto.get('selection_rule', '–')}.",
        "- Tests: McNemar (exact binomial below 25 discordant pairs) against the baseline and against the "
        "matched random-head control (`random-layer`: head-guided with K random heads, the seed with the "
        "median accuracy of `--seeds` seeds, each seed's alpha chosen on calibration); 95% bootstrap CIs.",
    ]
    if proto:
        cal, ev = proto["calibration"], proto["evaluation"]
        out.append(
            f"- D_cal: n = {cal['n_real']} real-audio items {cal['real_by_condition']} "
            f"({cal['n_diagnostic_excluded']} ablated twins excluded); evaluation: n = {ev['n_real']} "
            f"{ev['real_by_condition']} ({ev['n_missing']} missing audio, counted wrong); diagnostic twins "
            f"scored separately: n = {ev['n_diagnostic_scored_separately']}."
        )
    out += [
        "",
        f"**Verdict.** {verdict(rows)}",
        "",
        "## Table 1: accuracy (%), real-audio evaluation items",
        "",
    ]
    out += [
        "| method | ours | n | 95% CI | gain (pp) | McNemar p vs baseline | p vs random heads | chosen | published (quoted) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["method"] not in LABELS:
            continue
        q = f"{pub[r['method']]:.2f}" if pub else "–"
        gain = f"{r['gain_pp']:+.2f}" if "gain_pp" in r else ""
        out.append(
            f"| {LABELS[r['method']]} | {_pct(r['accuracy'])} | {r['n']} | {_pct(r['ci95'][0])}–{_pct(r['ci95'][1])} | "
            f"{gain} | {_p(r)} | {_p(r, 'mcnemar_vs_control')} | {_chosen(r)} | {q} |"
        )
    out += [
        "",
        "## Every method (real-audio evaluation items)",
        "",
        "| method | accuracy % | n | gain (pp) | p vs baseline | p vs random heads | seeds beaten | chosen |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        seeds = r.get("vs_control_seeds")
        beaten = f"{seeds['seeds_beaten']}/{seeds['n_seeds']}" if seeds else "–"
        extra = ""
        if r["method"] == "random-layer" and "acc_mean" in r:
            extra = f"; mean over {r['seeds']} seeds {_pct(r['acc_mean'])} ± {_pct(r['acc_sd'])}"
        gain = f"{r['gain_pp']:+.2f}" if "gain_pp" in r else ""
        out.append(
            f"| {r['method']} | {_pct(r['accuracy'])} | {r['n']} | {gain} | {_p(r)} | "
            f"{_p(r, 'mcnemar_vs_control')} | {beaten} | {_chosen(r)}{extra} |"
        )
    out += _condition_tables(rows, base)
    out += _domain_table(rows, base)
    out += _diagnostic_table(rows)
    out += _sweep_tables(summary.get("k_sweep"))
    out += _perm_table(rows)
    if summary.get("generate"):  # both protocols side by side (evaluate/generate_protocol.py)
        from ..evaluate.generate_protocol import markdown_table

        out += markdown_table(summary["generate"])
    ci, cf = d["check_i_auc"], d["check_ii_flips"]
    out += [
        "",
        f"## Listening score (specialists, K = {d['k']}), real-audio items only",
        "",
        f"- r computed on D_cal (n = {d['n_calib']} real-audio items); checks on the evaluation split (n = {d['n_eval']})",
        f"- specialists: {', '.join(d['heads'])}",
        f"- (i) AUC for correctness: {fmt(ci['auc_specialists'])}; random heads ({ci['draws']} draws of K heads): "
        f"mean {fmt(ci['auc_random_mean'])}, 5/50/95% {', '.join(fmt(q) for q in (ci['auc_random_q05_q50_q95'] or []))}; "
        f"specialists at percentile {fmt(ci['percentile_vs_random'], '.0f')}",
        f"- (ii) flips (prediction changes under the negative): n = {cf['n_flip']}, mean s = {fmt(cf['mean_flip'], '.4f')}; "
        f"non-flips n = {cf['n_nonflip']}, mean s = {fmt(cf['mean_nonflip'], '.4f')}; Mann–Whitney U one-sided p = {fmt(cf['p_greater'], '.3g')}",
        "",
        "Figures: `heads_r.png` (r heatmap, specialists boxed), `alpha_curve.png` (Figure 2: calibration accuracy vs alpha), "
        "`tradeoff.png` (misleading vs consistent accuracy as alpha grows, one curve per method), `domains.png`.",
        "",
        "Published figures are quoted from the paper (MMAU test-mini, string-match scoring of generated text); ours use the logit protocol and will differ.",
    ]
    return "\n".join(out) + "\n"


def _condition_tables(rows: list[dict[str, Any]], base: dict[str, Any]) -> list[str]:
    if "by_condition" not in base:
        return []
    conds = sorted(base["by_condition"])
    ns = base.get("n_by_condition", {})
    out = [
        "",
        "## Accuracy by condition (%) at the chosen configuration, and prior-follow on misleading items (%)",
        "",
        "| method | " + " | ".join(f"{k} (n={ns.get(k, '?')})" for k in conds) + " | prior followed |",
        "|---|" + "---|" * (len(conds) + 1),
    ]
    for r in rows:
        if "by_condition" not in r:
            continue
        cells = " | ".join(_pct(r["by_condition"].get(k)) for k in conds)
        out.append(f"| {r['method']} | {cells} | {_pct(r.get('prior_follow_misleading'))} |")
    curved = [r for r in rows if r.get("condition_curves")]
    if curved:
        out += [
            "",
            "## Accuracy by condition (%) at every alpha: calibration | evaluation",
            "",
            "Each cell: calibration / evaluation accuracy (captured real-audio items; n per condition in the header).",
        ]
    for r in curved:
        cc = r["condition_curves"]
        cal, ev = cc.get("calibration", {}), cc.get("evaluation", {})
        ks = sorted(set(cal) | set(ev))
        head = " | ".join(f"{k} (n={cal.get(k, {}).get('n', 0)}/{ev.get(k, {}).get('n', 0)})" for k in ks)
        out += [
            "",
            f"**{r['method']}** ({_chosen(r)})",
            "",
            f"| alpha | {head} |",
            "|---|" + "---|" * len(ks),
        ]
        for i, a in enumerate(cc["alpha"]):
            cells = " | ".join(
                f"{_pct(cal[k]['accuracy'][i]) if k in cal else '–'} / {_pct(ev[k]['accuracy'][i]) if k in ev else '–'}"
                for k in ks
            )
            mark = " ◀" if a == r.get("alpha") else ""
            out.append(f"| {a}{mark} | {cells} |")
    return out


def _domain_table(rows: list[dict[str, Any]], base: dict[str, Any]) -> list[str]:
    doms = sorted(base["by_domain"])
    ns = base.get("n_by_domain", {})
    out = [
        "",
        "## Accuracy by domain (%), real-audio evaluation items",
        "",
        "| method | " + " | ".join(f"{k} (n={ns.get(k, '?')})" for k in doms) + " |",
        "|---|" + "---|" * len(doms),
    ]
    for r in rows:
        out.append(f"| {r['method']} | " + " | ".join(_pct(r["by_domain"].get(k)) for k in doms) + " |")
    return out


def _diagnostic_table(rows: list[dict[str, Any]]) -> list[str]:
    diag = [r for r in rows if r.get("diagnostic")]
    if not diag:
        return []
    conds = sorted({k for r in diag for k in r["diagnostic"]})
    first = diag[0]["diagnostic"]
    out = [
        "",
        "## Diagnostic twins (audio replaced): accuracy % / hint followed % at each method's chosen configuration",
        "",
        "Not part of any statistic above; forward-pass methods are scored on them at their chosen alpha.",
        "",
        "| method | " + " | ".join(f"{k} (n={first.get(k, {}).get('n', '?')})" for k in conds) + " |",
        "|---|" + "---|" * len(conds),
    ]
    for r in diag:
        cells = []
        for k in conds:
            x = r["diagnostic"].get(k)
            cells.append("–" if x is None else f"{_pct(x['accuracy'])} / {_pct(x['hint_followed'])}")
        out.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    return out


def _sweep_tables(sweep: list[dict[str, Any]] | None) -> list[str]:
    if not sweep:
        return []
    out = [
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
    out += ["", "## Table 4: induced specialist layer sets", "", "| K | layers | |L_S| |", "|---|---|---|"]
    for s in sweep:
        out.append(f"| {s['K']} | {', '.join(map(str, s['layer_set']))} | {s['n_layers']} |")
    return out


def _perm_table(rows: list[dict[str, Any]]) -> list[str]:
    perm = [r for r in rows if r.get("option_permutations")]
    if not perm:
        return []
    n_rot = perm[0]["option_permutations"]["rotations"] + 1
    out = [
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
    return out
