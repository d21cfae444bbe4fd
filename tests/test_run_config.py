"""One run configuration (steer_audio/config.py's RunConfig): the CLI and recipes build it, the pipeline consumes
it. Their defaults agree (a recipe that leaves a setting out runs as `steer-audio evaluate` run without the
option does), and a recipe and the `evaluate` flags that say the same thing build equal configurations."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from steer_audio import cli
from steer_audio.config import RunConfig
from steer_audio.evaluate.run import DEFAULT_GRID, EvalConfig
from steer_audio.recipes import Recipe, load_recipe

RECIPES = sorted(Path(__file__).resolve().parents[1].glob("recipes/**/*.toml"))


def _cli_default(command, name):
    return inspect.signature(command).parameters[name].default


def test_recipe_cli_and_evaluator_defaults_agree():
    r = Recipe(name="x", reproduces="y")
    e = EvalConfig()
    assert (
        r.grid == e.grid == DEFAULT_GRID == [float(x) for x in _cli_default(cli.evaluate, "grid").split(",")]
    )
    assert r.k_sweep == e.k_sweep == [int(x) for x in _cli_default(cli.evaluate, "k_sweep").split(",")]
    for field in ("k", "seeds", "heads", "batch_size", "seed"):
        assert getattr(r, field) == getattr(e, field) == _cli_default(cli.evaluate, field), field
    for field in (
        "negative",
        "alpha",
        "permute_options",
        "protocol",
        "template",
        "max_new_tokens",
        "audio_encoder",
        "capture_levers",
    ):
        assert getattr(r, field) == _cli_default(cli.evaluate, field), field
    assert r.devices == _cli_default(cli.evaluate, "devices")


def test_recipe_lists_are_not_shared_between_instances():
    a, b = Recipe(name="a", reproduces="y"), Recipe(name="b", reproduces="y")
    a.grid.append(99.0)
    assert b.grid == DEFAULT_GRID and 99.0 not in DEFAULT_GRID


@pytest.fixture
def built(monkeypatch):
    """Runs the CLI with the pipeline replaced: returns the (stage, RunConfig, out) each command built."""
    seen: list[tuple[str, RunConfig, Path | None]] = []
    monkeypatch.setattr(cli, "_execute", lambda stage, cfg, out: seen.append((stage, cfg, out)))

    def invoke(*args: str) -> tuple[str, RunConfig, Path | None]:
        r = CliRunner().invoke(cli.app, list(args))
        assert r.exit_code == 0, r.output
        return seen.pop()

    return invoke


def test_a_recipe_and_the_same_flags_build_equal_configurations(built, tmp_path):
    """recipes/mini/table1.toml and recipes/qwen2-audio/table1-generate.toml, and their settings written as
    `evaluate` flags by hand."""
    root = Path(__file__).resolve().parents[1] / "recipes"
    mini = [
        "--model", "mini", "--data", "data/listen-bench/listen-bench.json", "--k", "8", "--k-sweep",
        "4,8,12", "--seeds", "10", "--grid", "0,0.5,1,2,4,8,16", "--batch-size", "8",
    ]  # fmt: skip
    qwen = [
        "--model", "qwen2-audio", "--data", "mmau-v1", "--audio-root", "data/mmau/test-mini-audios",
        "--calib-fraction", "0.2", "--seed", "0", "--k", "20", "--k-sweep", "20", "--seeds", "10",
        "--method", "baseline", "--method", "head-level", "--method", "single-layer", "--method",
        "head-guided", "--method", "random-layer", "--grid", "0,0.5,1,2,3,4,5,6,7,8,10", "--batch-size",
        "16", "--template", "mmau-choices", "--max-new-tokens", "256", "--protocol", "generate",
    ]  # fmt: skip
    for recipe, flags in (
        (root / "mini/table1.toml", mini),
        (root / "qwen2-audio/table1-generate.toml", qwen),
    ):
        out = tmp_path / recipe.stem
        stage_r, from_recipe, out_r = built("run", str(recipe), "--out", str(out))
        stage_f, from_flags, out_f = built("evaluate", *flags, "--out", str(out))
        assert stage_r == stage_f == "evaluate" and out_r == out_f == out
        assert from_recipe == from_flags == load_recipe(recipe).run_config()
    assert from_flags.protocol == "generate" and from_flags.generate_config().max_new_tokens == 256
    assert from_flags.methods[:2] == ["baseline", "head-level"] and from_flags.audio_root == Path(
        "data/mmau/test-mini-audios"
    )


def test_run_overrides_and_defaults(built, tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('name = "x"\nreproduces = "y"\n')
    _, bare, _ = built("run", str(p))
    _, plain, _ = built("evaluate")
    assert bare == plain == RunConfig() == Recipe(name="x", reproduces="y").run_config()
    assert bare.methods[0] == "baseline" and bare.alpha is None
    _, over, _ = built("run", str(p), "--audio-root", str(tmp_path), "--limit", "3")
    assert (over.audio_root, over.limit) == (tmp_path, 3)
    assert RunConfig(audio_root=tmp_path, limit=3) == over
    _, disc, _ = built("discover", "--draws", "7", "--k", "5")
    assert (disc.methods, disc.draws, disc.k) == (["baseline"], 7, 5)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_recipe_round_trips_through_the_evaluate_options(path):
    """The recipe's configuration, written as `evaluate`'s options and parsed back, is the same configuration."""
    cfg = load_recipe(path).run_config()
    kw = cfg.cli_kwargs(Path("out"))
    assert set(kw) == set(inspect.signature(cli.evaluate).parameters)
    kw.pop("out")
    assert cli.evaluate_config(**kw) == cfg


def test_a_bad_recipe_alpha_is_one_clear_error(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('name = "x"\nreproduces = "y"\nalpha = "lots"\n')
    r = CliRunner().invoke(cli.app, ["run", str(p)])
    assert r.exit_code == 1 and "--alpha must be a number or 'auto'" in r.output
    assert "Traceback" not in r.output


def test_the_pipeline_run_from_python_equals_the_cli_run(dataset_path, tmp_path):
    """config.py's docstring: `execute(stage, RunConfig(...), out)` is the run `steer-audio evaluate` makes;
    the public `steer_audio.run(cfg, out)` is that call."""
    import steer_audio as sa

    flags = [
        "--model", "tiny", "--data", str(dataset_path), "--calib-fraction", "0.5", "--k", "4", "--k-sweep",
        "4", "--seeds", "1", "--grid", "0,2", "--method", "head-guided", "--batch-size", "12",
    ]  # fmt: skip
    r = CliRunner().invoke(cli.app, ["evaluate", *flags, "--out", str(tmp_path / "cli")])
    assert r.exit_code == 0, r.output
    cfg = RunConfig(
        model="tiny",
        data=str(dataset_path),
        calib_fraction=0.5,
        k=4,
        k_sweep=[4],
        seeds=1,
        grid=[0.0, 2.0],
        methods=["head-guided"],
        batch_size=12,
    )
    summary = sa.run(cfg, tmp_path / "py")
    for name in ("predictions.jsonl", "splits.json", "heads.json"):
        assert (tmp_path / "py" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    tables = [json.loads((tmp_path / d / "summary.json").read_text())["table"] for d in ("py", "cli")]
    assert tables[0] == tables[1] and [r["method"] for r in tables[0]][:2] == ["baseline", "head-guided"]
    assert summary["config"]["methods"] == ["baseline", "head-guided"]


def test_run_refuses_an_unknown_stage(tmp_path):
    import steer_audio as sa

    with pytest.raises(sa.SteerAudioError, match="stage 'train'"):
        sa.run(sa.RunConfig(model="tiny", data="demo"), tmp_path, stage="train")
    assert not any(tmp_path.iterdir())  # nothing written


def test_capture_levers_reach_the_run_and_a_bad_one_is_one_message(built):
    _, cfg, _ = built("discover", "--capture-levers", "no_sync,liger")
    assert cfg.capture_levers == "no_sync,liger"
