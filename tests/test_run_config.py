"""Until the CLI, recipes and the Evaluator share one run configuration, their defaults must agree: a recipe
that leaves a setting out runs as `steer-audio evaluate` run without the option does."""

from __future__ import annotations

import inspect

from steer_audio import cli
from steer_audio.evaluate.run import DEFAULT_GRID, EvalConfig
from steer_audio.recipes import Recipe


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
    ):
        assert getattr(r, field) == _cli_default(cli.evaluate, field), field
    assert r.devices == _cli_default(cli.evaluate, "devices")


def test_recipe_lists_are_not_shared_between_instances():
    a, b = Recipe(name="a", reproduces="y"), Recipe(name="b", reproduces="y")
    a.grid.append(99.0)
    assert b.grid == DEFAULT_GRID and 99.0 not in DEFAULT_GRID
