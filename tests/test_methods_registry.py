"""The method registry: every registered method is runnable, is offered by `steer-audio evaluate --help`
and is listed in the README (whose list is generated from the registry); the Evaluator runs exactly the
requested methods, in registry order, through it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from steer_audio.cli import app
from steer_audio.errors import SteerAudioError
from steer_audio.steer import methods

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_method_resolves_to_a_function():
    assert methods.names()[0] == "baseline"
    for m in methods.REGISTRY.values():
        assert callable(m.run), m.name
        assert m.kind in ("cached", "forward")
        assert m.help
    with pytest.raises(SteerAudioError, match="unknown method 'nope'"):
        methods.get("nope")


def test_every_method_is_in_the_cli_help():
    r = CliRunner().invoke(app, ["evaluate", "--help"], env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
    assert r.exit_code == 0, r.output
    text = re.sub(r"[\s│]+", " ", r.output)
    for name in methods.names():
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), name


def test_readme_method_list_is_the_registry_list():
    text = README.read_text()
    section = text[text.index("### Methods (`--method`)") :]
    section = section[: section.index("\n### ", 1)]
    listed = re.findall(r"^\* `([^`]+)`", section, flags=re.M)
    assert listed == list(methods.names())
    assert methods.markdown_list() in section


def test_unknown_method_is_refused_before_anything_runs():
    from steer_audio.evaluate.run import EvalConfig

    with pytest.raises(SteerAudioError, match="unknown method"):
        EvalConfig(methods=["baseline", "bogus"]).validate(n_heads=8)
