"""The cross-projector page: every finished run found, cells and the win/loss count from the summaries."""

import json
from pathlib import Path

import pytest

from steer_audio.errors import SteerAudioError
from steer_audio.io import write_json
from steer_audio.report.scale import collect, render


def _summary(base: float, hg: float, p: float) -> dict:
    cond = {"neutral": 0.5, "consistent": 0.9, "misleading": 0.25}
    return {
        "verdict": "v",
        "discovery": {
            "protocol": {"rule": "real only", "selection_rule": "calib"},
            "check_i_auc": {"auc_specialists": 0.6, "auc_random_mean": 0.55, "percentile_vs_random": 80.0},
            "check_ii_flips": {"n_flip": 3, "p_greater": 0.2},
        },
        "table": [
            {
                "method": "baseline",
                "accuracy": base,
                "n": 100,
                "by_condition": cond,
                "prior_follow_misleading": 0.7,
            },
            {
                "method": "head-guided",
                "accuracy": hg,
                "n": 100,
                "gain_pp": 100 * (hg - base),
                "alpha": 2.0,
                "mcnemar_vs_baseline": {"p_value": p},
                "mcnemar_vs_control": {"p_value": 0.5},
                "by_condition": cond | {"misleading": 0.4},
                "prior_follow_misleading": 0.5,
            },
        ],
    }


def test_scale_page_counts_significant_cells_per_projector(tmp_path: Path):
    write_json(tmp_path / "p0" / "silence" / "summary.json", _summary(0.50, 0.60, 0.01))
    write_json(tmp_path / "p1" / "silence" / "summary.json", _summary(0.50, 0.45, 0.03))
    write_json(tmp_path / "p1" / "floor" / "summary.json", _summary(0.50, 0.52, 0.40))
    (tmp_path / "p1" / "noise").mkdir()  # unfinished: no summary, left out
    preds = [
        {"id": f"b{i}-{cond}", "method": m, "correct": ok}
        for i in range(4)
        for m in ("baseline", "head-guided")
        for cond, ok in (("neutral", True), ("misleading", i == 0), ("consistent", True))
    ]
    (tmp_path / "p0" / "silence" / "predictions.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in preds)
    )
    runs = collect(tmp_path)
    assert {k: sorted(v) for k, v in runs.items()} == {"silence": ["p0", "p1"], "floor": ["p1"]}
    page = render("T", runs, {"p0": "T-p0.md", "p1": "T-p1.md"})
    assert page.index("## silence") < page.index("## floor")  # the paper's negative first
    assert (
        "| head-guided | **60.0 (+10.0; p 0.01, p<sub>r</sub> 0.5)** | 45.0 (-5.0; p 0.03, p<sub>r</sub> 0.5) |"
        in page
    )
    assert (
        "better than the baseline at p < 0.05: 1 of 3 (run kind, projector, method) cells: silence/p0/head-guided (+10.0 pp)"
        in page
    )
    assert "worse than the baseline at p < 0.05: 1: silence/p1/head-guided (-5.0 pp)" in page
    # neutral right on 4 bases, misleading on 1: gap 75 pp, 3 discordant pairs -> exact McNemar p = 0.25;
    # p1 has no predictions.jsonl, so no row
    assert "| p0 | 50.0 | 90.0 | 25.0 | +75.0 (n = 4) | 0.25 | 70.0 | – |" in page
    assert "| p1 | 50.0 | 90.0 | 25.0 |" not in page
    assert "| p0 | 50.0 → 50.0 | 90.0 → 90.0 | 25.0 → 40.0 | 70.0 → 50.0 | 2.0 |" in page


def test_scale_page_refuses_an_empty_root(tmp_path: Path):
    with pytest.raises(SteerAudioError, match="no finished evaluate runs"):
        collect(tmp_path)
