"""`python -m steer_audio.report negatives | conditions` (report/tables.py) on hand-made run directories: every
cell written out here by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from steer_audio.report.__main__ import main
from steer_audio.report.tables import condition_tables, negatives_table


def _summary(run: Path, table: list[dict], n_calib: int = 8, n_eval: int = 4) -> None:
    run.mkdir(parents=True)
    splits = {"n_calib": n_calib, "n_eval": n_eval}
    (run / "summary.json").write_text(json.dumps({"table": table, "splits": splits}))


BASE = {
    "method": "baseline",
    "accuracy": 0.5,
    "by_condition": {"neutral": 0.75, "misleading": 0.25, "consistent": 1.0, "silence": 0.0},
    "prior_follow_misleading": 0.5,
}
STEERED = {
    "method": "head-guided",
    "alpha": 2.0,
    "accuracy": 0.625,
    "by_condition": {"neutral": 1.0, "misleading": 0.5},
    "prior_follow_misleading": 0.25,
    "mcnemar_vs_baseline": {"p_value": 0.0123456},
}
CONTROL = {"method": "control/other-example v", "alpha": 2.0, "accuracy": 0.1}


def test_negatives_table_rows_by_hand(tmp_path):
    for neg in ("silence", "noise", "shuffle", "drop"):
        _summary(tmp_path / neg, [BASE, STEERED, CONTROL] if neg == "silence" else [BASE])
    text = negatives_table(tmp_path)
    assert text == (
        "# mini: methods x negatives on listen-bench (n_calib = 8, n_test = 4)\n\n"
        "Made by `bash scripts/negatives_table.sh` (alpha chosen on the calibration split; accuracy on the test split).\n\n"
        "| negative | method | alpha | accuracy | neutral | misleading | consistent | silence | prior followed | McNemar p |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
        "| silence | baseline |  | 50.0 | 75.0 | 25.0 | 100.0 | 0.0 | 50.0 |  |\n"
        "| silence | head-guided | 2.0 | 62.5 | 100.0 | 50.0 | – | – | 25.0 | 0.0123 |\n"
        "| noise | baseline |  | 50.0 | 75.0 | 25.0 | 100.0 | 0.0 | 50.0 |  |\n"
        "| shuffle | baseline |  | 50.0 | 75.0 | 25.0 | 100.0 | 0.0 | 50.0 |  |\n"
        "| drop | baseline |  | 50.0 | 75.0 | 25.0 | 100.0 | 0.0 | 50.0 |  |\n"
    )
    out = tmp_path / "page" / "negatives.md"
    assert main(["negatives", str(tmp_path), "--out", str(out)]) == 0
    assert out.read_text() == text


def test_negatives_table_names_a_missing_run(tmp_path, capsys):
    _summary(tmp_path / "silence", [BASE])
    assert main(["negatives", str(tmp_path), "--out", str(tmp_path / "x.md")]) == 1
    assert f"{tmp_path / 'noise'}: no summary.json" in capsys.readouterr().err


def _pred(base: str, cond: str, correct: bool, followed: bool | None, task="sound", template="t1") -> dict:
    return {
        "id": f"{base}-{cond}",
        "condition": cond,
        "correct": correct,
        "followed_prior": followed,
        "task": task,
        "template": template,
    }


def test_condition_tables_by_hand(tmp_path, capsys):
    # 4 base items: neutral right on all 4; misleading right only on b3 (b0..b2 discordant: 3 vs 0);
    # b3 is a speech item of another template
    preds = []
    for i in range(4):
        kw = {"task": "speech", "template": "t2"} if i == 3 else {}
        preds.append(_pred(f"b{i}", "neutral", True, None, **kw))
        preds.append(_pred(f"b{i}", "misleading", i == 3, i != 3, **kw))
    text = condition_tables(preds)
    head = "neutral acc | misleading acc | consistent acc | silence acc | misleading prior-follow | silence prior-follow"
    # McNemar 3 vs 0: 2 * 0.5^3 = 0.25; neutral 4 of 4 vs chance 0.25: 0.25^4 = 0.0039
    assert text == (
        f"| {head} |\n|---|---|---|---|---|---|\n"
        "| 1.000 (n=4) | 0.250 (n=4) | – | – | 0.750 | – |\n\n"
        f"| task | {head} |\n|---|---|---|---|---|---|---|\n"
        "| sound | 1.000 (n=3) | 0.000 (n=3) | – | – | 1.000 | – |\n"
        "| speech | 1.000 (n=1) | 1.000 (n=1) | – | – | 0.000 | – |\n\n"
        f"| template | {head} |\n|---|---|---|---|---|---|---|\n"
        "| t1 | 1.000 (n=3) | 0.000 (n=3) | – | – | 1.000 | – |\n"
        "| t2 | 1.000 (n=1) | 1.000 (n=1) | – | – | 0.000 | – |\n\n"
        "neutral 1.000 vs misleading 0.250 on 4 base items: gap 75.0 pp; discordant 3 vs 0, exact McNemar "
        "p = 0.25; neutral vs chance 0.25: one-sided binomial p = 0.0039\n"
    )
    run = tmp_path / "run"
    run.mkdir()
    (run / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
    assert main(["conditions", str(run)]) == 0
    assert capsys.readouterr().out == text


def test_the_page_stays_the_default_command(tmp_path, capsys):
    with pytest.raises(SystemExit):  # argparse: the page needs --out and run directories
        main([])
    assert "--out" in capsys.readouterr().err
    assert main(["--help"]) == 0 and "negatives OUTS" in capsys.readouterr().out
