"""The CLI end to end on the tiny model: results on stdout, one clear error (exit 1) for bad input."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from steer_audio.cli import app

runner = CliRunner()
#: the CLI's default model is the embedded `mini`; these tests run the random-weight `tiny` on purpose
T = ["--model", "tiny"]


def test_evaluate_end_to_end(dataset_path, tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(
        app,
        [
            "evaluate",
            "--model",
            "tiny",
            "--data",
            str(dataset_path),
            "--calib-fraction",
            "0.5",
            "--k",
            "8",
            "--k-sweep",
            "4,8",
            "--seeds",
            "2",
            "--grid",
            "0,2",
            "--out",
            str(out),
            "--batch-size",
            "6",
            "--method",
            "head-guided",
            "--method",
            "single-layer",
            "--method",
            "head-level",
            "--method",
            "avs",
        ],
    )
    assert r.exit_code == 0, r.output
    assert f"run directory: {out}" in r.output
    s = json.loads((out / "summary.json").read_text())
    assert s["model"]["random_weights"] is True
    methods = [row["method"] for row in s["table"]]
    assert methods[:3] == ["baseline", "head-guided", "control/other-example v"]
    assert all(v["mismatched_items"] == [] for v in s["official_scorer"].values())
    assert {"head-level/specialist", "head-level/random", "avs", "single-layer"} <= set(methods)
    assert (out / "report.md").read_text().count("RANDOM WEIGHTS") >= 1
    assert set(json.loads((out / "splits.json").read_text())["calib_ids"]).isdisjoint(
        json.loads((out / "splits.json").read_text())["eval_ids"]
    )
    for f in (
        "meta.json",
        "heads.json",
        "predictions.jsonl",
        "heads_r.png",
        "alpha_curve.png",
        "mmau_predictions.head-guided.json",
    ):
        assert (out / f).exists(), f


def test_bad_inputs_exit_one_with_a_message(dataset_path, tmp_path):
    cases = [
        (["discover", "--model", "nope"], "unknown model"),
        (["discover", *T, "--data", str(dataset_path), "--k", "999", "--out", str(tmp_path / "a")], "K=999"),
        (["evaluate", *T, "--data", str(dataset_path), "--alpha", "x"], "--alpha"),
        (
            ["evaluate", *T, "--data", str(dataset_path), "--method", "magic", "--out", str(tmp_path / "b")],
            "unknown method",
        ),
        (
            [
                "evaluate",
                *T,
                "--data",
                str(dataset_path),
                "--grid",
                "1,nan",
                "--alpha",
                "auto",
                "--out",
                str(tmp_path / "c"),
            ],
            "finite",
        ),
        (["discover", *T, "--data", str(tmp_path / "none.json")], "not found"),
        (["run", str(tmp_path / "none.toml")], "recipe not found"),
    ]
    for args, msg in cases:
        r = runner.invoke(app, args)
        assert r.exit_code != 0, args
        assert msg in r.output, (args, r.output)
        assert "Traceback" not in r.output


def test_recipe_schema_is_strict(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('name = "x"\nreproduces = "y"\nmodle = "tiny"\n')
    r = runner.invoke(app, ["run", str(p)])
    assert r.exit_code == 1 and "modle" in r.output


def test_permute_options_and_from_run(dataset_path, tmp_path):
    out = tmp_path / "p"
    args = [
        "evaluate",
        "--data",
        str(dataset_path),
        "--model",
        "tiny",
        "--calib-fraction",
        "0.5",
        "--k",
        "4",
        "--k-sweep",
        "4",
        "--seeds",
        "2",
        "--grid",
        "0,1",
        "--batch-size",
        "12",
        "--method",
        "head-guided",
        "--method",
        "aad",
    ]
    r = runner.invoke(app, [*args, "--out", str(out), "--permute-options", "2"])
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    base = s["table"][0]
    assert base["option_permutations"]["rotations"] == 1
    assert "Position-bias control" in (out / "report.md").read_text()
    # --from reuses the capture; a run of another model is refused naming both
    r2 = runner.invoke(app, [*args, "--out", str(tmp_path / "q"), "--from", str(out)])
    assert r2.exit_code == 0, r2.output
    assert "capturing" not in r2.output
    (tmp_path / "other.json").write_text((dataset_path).read_text().replace("clip", "sound"))
    bad = [*args]
    bad[2] = str(tmp_path / "other.json")
    r3 = runner.invoke(
        app,
        [*bad, "--audio-root", str(dataset_path.parent), "--out", str(tmp_path / "z"), "--from", str(out)],
    )
    assert r3.exit_code == 1 and "data sha256" in r3.output


def test_all_recipes_parse():
    from pathlib import Path

    from steer_audio.evaluate.run import METHODS
    from steer_audio.recipes import load_recipe

    files = sorted(Path(__file__).resolve().parents[1].glob("recipes/**/*.toml"))
    assert len(files) >= 11
    for f in files:
        r = load_recipe(f)
        assert all(m in METHODS for m in (r.method or []))


def _head_guided_args(data, out, grid: str, *extra: str) -> list[str]:
    """`evaluate` with head-guided steering, K = 4 and one seed (small and fast on the tiny model)."""
    return [
        "evaluate", "--model", "tiny", "--data", str(data), "--k", "4", "--k-sweep", "4", "--seeds", "1",
        "--grid", grid, "--method", "head-guided", "--out", str(out), *extra,
    ]  # fmt: skip


def test_listen_agrees_with_the_evaluation_run(dataset_path, tmp_path):
    out = tmp_path / "run"
    args = _head_guided_args(dataset_path, out, "0,2,4", "--calib-fraction", "0.5", "--batch-size", "12")
    assert runner.invoke(app, args).exit_code == 0
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    item_id = preds[0]["id"]
    item = next(it for it in json.loads(dataset_path.read_text()) if it["id"] == item_id)
    r = runner.invoke(
        app,
        [
            "listen",
            str(dataset_path.parent / item["audio_id"]),
            "-q",
            item["question"],
            "-c",
            ",".join(item["choices"]),
            "--from",
            str(out),
            "--model",
            "tiny",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.output[r.output.index("{") :])
    by = {p["method"]: p for p in preds if p["id"] == item_id}
    assert res["prediction"]["choice"] == by["baseline"]["choice"]
    assert res["steered_prediction"]["choice"] == by["head-guided"]["choice"]
    assert 0 <= res["listening_percentile_vs_calibration"] <= 100


def test_listen_bench_style_data_reports_conditions_and_prior_follow(tmp_path):
    from conftest import write_dataset

    path = write_dataset(tmp_path, n=16)
    items = json.loads(path.read_text())
    for i, it in enumerate(items):
        it["split"] = "calib" if i < 8 else "test"
        it["condition"] = "misleading" if i % 2 else "neutral"
        it["prior_choice"] = it["choices"][-1] if i % 2 else None
    path.write_text(json.dumps(items))
    out = tmp_path / "run"
    r = runner.invoke(app, _head_guided_args(path, out, "0,1"))
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert "the file's `split` field" in s["splits"]["how"]
    base = s["table"][0]
    assert set(base["by_condition"]) == {"misleading", "neutral"}
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    by_id = {it["id"]: it for it in items}
    mis = [p for p in preds if p["method"] == "baseline" and by_id[p["id"]]["condition"] == "misleading"]
    want = sum(p["choice"] == by_id[p["id"]]["prior_choice"] for p in mis) / len(mis)
    assert base["prior_follow_misleading"] == want
    assert "prior followed" in (out / "report.md").read_text()
