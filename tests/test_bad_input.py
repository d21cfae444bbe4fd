"""Every bad input of issue 15, tried as a new user would (tiny model, a dozen synthetic clips): one clear line
(what is wrong, which file or option, what to do), exit status 1, and nothing already cached lost or rewritten."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_dataset
from typer.testing import CliRunner

from steer_audio.cli import app

REPO = Path(__file__).resolve().parents[1]
T = ["--model", "tiny"]
SMALL = ["--k", "4", "--draws", "5", "--batch-size", "6"]


def _invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def _one_error(r, *words: str) -> str:
    """Exit 1, exactly one `error:` line, no traceback, and the line names every word given."""
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.output
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "d", n=12)


def _discover(data: Path, out: Path, *extra: str):
    return _invoke(
        "discover", *T, "--data", str(data), "--calib-fraction", "0.5", "--out", str(out), *SMALL, *extra
    )


@pytest.fixture
def run(data: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    r = _discover(data, out)
    assert r.exit_code == 0, r.output
    return out


# -- resume after fixing the audio ---------------------------------------------------------------------------


def test_wrong_audio_root_then_the_right_one(data: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "r"
    r = _discover(data, out, "--audio-root", str(empty))
    _one_error(r, "none of the", str(empty), "--audio-root")
    assert not (out / "capture").exists()  # refused before any capture
    r = _discover(data, out, "--audio-root", str(data.parent))
    assert r.exit_code == 0, r.output
    idx = json.loads((out / "capture" / "capture_index.json").read_text())
    assert len(idx["examples"]) == 12 and idx["missing"] == {}


def test_a_clip_recorded_missing_is_retried_and_strict_fails_while_missing(
    data: Path, tmp_path: Path
) -> None:
    clip = data.parent / "audio" / "item005.wav"
    kept = tmp_path / "item005.wav"
    shutil.move(clip, kept)
    out = tmp_path / "r"
    assert _discover(data, out).exit_code == 0
    idx_path = out / "capture" / "capture_index.json"
    assert list(json.loads(idx_path.read_text())["missing"]) == ["item005"]
    before = _digest(out / "capture")
    # --strict while the clip is still missing: exit 1 naming it, the cache as it was
    r = _discover(data, out, "--strict")
    _one_error(r, "item005.wav")
    assert _digest(out / "capture") == before
    # the file restored: the rerun captures it, nothing is missing any more, the earlier shards untouched
    shutil.move(kept, clip)
    r = _discover(data, out, "--strict")
    assert r.exit_code == 0, r.output
    idx = json.loads(idx_path.read_text())
    assert idx["missing"] == {} and "item005" in idx["examples"]
    after = _digest(out / "capture")
    assert all(after[k] == v for k, v in before.items() if k.endswith(".safetensors"))


# -- a refused rerun leaves the run's provenance alone ------------------------------------------------------


@pytest.mark.parametrize("change", [["--seed", "1"], ["--negative", "noise"]])
def test_refused_rerun_rewrites_nothing(run: Path, data: Path, change: list[str]) -> None:
    before = _digest(run)
    r = _discover(data, run, *change)
    _one_error(r, "different settings", str(run / "capture"))
    assert _digest(run) == before  # meta.json, splits.json, the cache: byte for byte


# -- option checks come before any capture ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--k", "0"], ["--k", "at least 1"]),
        (["--k", "100"], ["K=100", "heads"]),
        (["--ranking", "bogus"], ["--ranking", "bogus", "abs"]),
        (["--dtype", "bogus"], ["--dtype", "bogus", "float32"]),
        (["--limit", "0"], ["--limit", "at least 1"]),
        (["--limit", "-3"], ["--limit", "-3"]),
        (["--calib-fraction", "1.5"], ["--calib-fraction", "1.5"]),
        (["--calib", "other.json"], ["--calib", "--calib-fraction", "one"]),
        (["--capture-levers", "no_sync,warp"], ["--capture-levers", "'warp'", "encoder_graph"]),
    ],
)
def test_option_errors_before_capture(data: Path, tmp_path: Path, args: list[str], words: list[str]) -> None:
    out = tmp_path / "r"
    r = _discover(data, out, *args)  # _discover passes --calib-fraction 0.5 as well
    _one_error(r, *words)
    assert not (out / "capture").exists()


def test_device_cuda_without_a_gpu(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    out = tmp_path / "r"
    _one_error(_discover(data, out, "--device", "cuda"), "--device cuda", "no CUDA GPU", "--device cpu")
    _one_error(_discover(data, out, "--device", "tpu"), "--device 'tpu'")
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--grid", "nan,inf,-1"], ["--grid", "nan", "inf", "-1", "finite"]),
        (["--grid", "1,,2"], ["--grid", "empty"]),
        (["--grid", "1,x"], ["--grid", "x"]),
        (["--alpha", "-2"], ["--alpha", "-2", "non-negative"]),
        (["--k-sweep", "0,4"], ["--k-sweep", "at least 1"]),
    ],
)
def test_evaluate_numbers(data: Path, tmp_path: Path, args: list[str], words: list[str]) -> None:
    out = tmp_path / "r"
    r = _invoke("evaluate", *T, "--data", str(data), "--out", str(out), *args)
    _one_error(r, *words)
    assert not out.exists()


def test_fixed_alpha_is_labelled_user_chosen(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    r = _invoke(
        "evaluate", *T, "--data", str(data), "--calib-fraction", "0.5", "--out", str(out), "--alpha", "2",
        "--method", "head-guided", "--k", "4", "--k-sweep", "4", "--seeds", "1", "--no-controls",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    title = next(ln for ln in r.stdout.splitlines() if "evaluation split" in ln)
    assert "alpha fixed by --alpha 2.0 (user-chosen)" in title and "chosen on calibration" not in title


def test_calib_fraction_with_a_split_field(tmp_path: Path) -> None:
    path = write_dataset(tmp_path / "d", n=12)
    items = json.loads(path.read_text())
    for i, it in enumerate(items):
        it["split"], it["condition"] = ("calib" if i < 6 else "test"), "neutral"
    path.write_text(json.dumps(items))
    r = _invoke("discover", *T, "--data", str(path), "--calib-fraction", "0.3", "--out", str(tmp_path / "r"))
    _one_error(r, "--calib-fraction", "split", "drop --calib-fraction")


# -- bad items ----------------------------------------------------------------------------------------------


def _edit_first_item(data: Path, **fields) -> None:
    items = json.loads(data.read_text())
    items[0].update(fields)
    data.write_text(json.dumps(items))


def test_item_with_eleven_choices(data: Path, tmp_path: Path) -> None:
    ch = [f"option {j}" for j in range(11)]
    _edit_first_item(data, choices=ch, answer=ch[0])
    _one_error(_discover(data, tmp_path / "r"), str(data), "item000", "11 choices", "at most 10")


@pytest.mark.parametrize("answer_dup", [False, True])
def test_duplicate_choices(data: Path, tmp_path: Path, answer_dup: bool) -> None:
    ch = ["a cat", "a dog", "a cat" if not answer_dup else "a dog", "rain"]
    _edit_first_item(data, choices=ch, answer="a dog")
    dup = "a dog" if answer_dup else "a cat"
    _one_error(_discover(data, tmp_path / "r"), str(data), "item000", repr(dup), "distinct")


def test_mmau_without_audio_root(tmp_path: Path) -> None:
    out = tmp_path / "r"
    r = _invoke("discover", *T, "--data", "mmau", "--out", str(out))
    _one_error(r, "--data mmau", "--audio-root")
    assert not out.exists()


# -- listen ---------------------------------------------------------------------------------------------------


def test_listen_from_a_missing_folder(data: Path, tmp_path: Path) -> None:
    clip = data.parent / "audio" / "item000.wav"
    r = _invoke("listen", str(clip), "-q", "What?", "-c", "a,b", *T, "--from", str(tmp_path / "nope"))
    _one_error(r, "--from", str(tmp_path / "nope"), "run directory")


def test_listen_empty_option(data: Path) -> None:
    clip = data.parent / "audio" / "item000.wav"
    r = _invoke("listen", str(clip), "-q", "Pitch?", "-c", "low,,high", *T)
    _one_error(r, "--choices", "option 2 is empty", "low,,high")


def test_listen_options_with_commas(data: Path) -> None:
    clip = data.parent / "audio" / "item000.wav"
    opts = ["low, like a hum", "high, like a whistle", "none"]
    r = _invoke("listen", str(clip), "-q", "Pitch?", *[a for o in opts for a in ("-c", o)], *T, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout[r.stdout.index("{") :])
    assert res["prediction"]["choice"] in opts and res["random_weights"] is True


# -- remote, pipes, terminals -------------------------------------------------------------------------------


def test_remote_refused_port_fails_fast(data: Path, tmp_path: Path) -> None:
    t0 = time.monotonic()
    r = _discover(data, tmp_path / "r", "--remote", "http://127.0.0.1:9")
    _one_error(r, "http://127.0.0.1:9", "refused", "deploy/ndif/start.sh")
    assert time.monotonic() - t0 < 30
    assert "refused (waited" in r.output  # the state was shown while waiting


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NDIF_HOST", "NDIF_API_KEY")}
    return env | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "40"} | extra


def _steer_audio() -> str:
    return str(Path(sys.executable).with_name("steer-audio"))


def test_discover_piped_to_head_prints_the_run_directory_first(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    cmd = [_steer_audio(), "discover", *T, "--data", str(data), "--calib-fraction", "0.5", "--out", str(out)]
    sh = " ".join(f"'{c}'" for c in cmd + SMALL) + ' | head -1; echo "rc=${PIPESTATUS[0]}" >&2'
    p = subprocess.run(["bash", "-c", sh], env=_cli_env(), capture_output=True, text=True, timeout=600)
    assert p.stdout.splitlines() == [str(out)], p.stdout
    assert "rc=0" in p.stderr and "Broken pipe" not in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_error_lines_do_not_wrap_or_lose_markup_when_piped(data: Path, tmp_path: Path) -> None:
    """A long message at COLUMNS=40, piped: one line, the [brackets] of the list kept."""
    ch = ["a cat", "a [bold]dog[/bold]", "a cat", "rain"]
    _edit_first_item(data, choices=ch, answer="rain")
    cmd = [_steer_audio(), "discover", *T, "--data", str(data), "--out", str(tmp_path / "r")]
    p = subprocess.run(cmd, env=_cli_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 1
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), p.stderr
    assert "['a cat', 'a [bold]dog[/bold]', 'a cat', 'rain']" in lines[0]


# -- defaults for a new user ----------------------------------------------------------------------------------


def test_default_model_not_set_up_says_what_to_run(tmp_path: Path) -> None:
    env = {"STEER_AUDIO_CACHE": str(tmp_path / "empty-cache")}
    for args in (["discover"], ["evaluate"], ["listen", "x.wav", "-q", "q", "-c", "a,b"]):
        r = (
            _invoke(*args, "--out", str(tmp_path / "r"), env=env)
            if args[0] != "listen"
            else _invoke(*args, env=env)
        )
        first = r.output.splitlines()[0]
        assert r.exit_code == 1 and "bash scripts/setup_mini.sh" in first, r.output
    assert not (tmp_path / "r").exists()


def test_tiny_says_random_weights_on_stdout_and_in_heads_json(run: Path, data: Path) -> None:
    heads = json.loads((run / "heads.json").read_text())
    assert heads["random_weights"] is True and "RANDOM WEIGHTS" in heads["warning"]
    r = _discover(data, run)  # a resumed run prints the same
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0] == str(run) and lines[1].startswith("RANDOM WEIGHTS")


def test_evaluate_help_lists_every_method() -> None:
    from steer_audio.evaluate.run import METHODS

    r = _invoke("evaluate", "--help", env={"COLUMNS": "400"})
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    missing = [m for m in METHODS if m not in text]
    assert not missing, f"evaluate --help lacks {missing}"


# -- checkpoints load as safetensors only -----------------------------------------------------------------------


class _Loaded(Exception):
    pass


@pytest.mark.parametrize("name", ["qwen2-audio", "r1-aqa", "qwen2.5-omni", "voxtral-mini", "af3"])
def test_checkpoints_are_loaded_with_use_safetensors(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every kind that loads a checkpoint asks `from_pretrained` for safetensors (never a pickled .bin)."""
    import transformers

    from steer_audio.models import registry

    seen: list[dict] = []

    def fake(src, *args, **kw):
        seen.append(kw)
        raise _Loaded

    spec = registry.resolve_spec(name)
    for cls in (transformers.Qwen2AudioForConditionalGeneration, *_family_classes()):
        monkeypatch.setattr(cls, "from_pretrained", classmethod(lambda c, src, *a, **kw: fake(src, *a, **kw)))
    with pytest.raises(_Loaded):
        registry.build_module(spec)
    assert seen and seen[0].get("use_safetensors") is True, seen


def _family_classes() -> list[type]:
    from steer_audio.models import families

    out = []
    for fam in getattr(families, "FAMILIES", {}).values():
        cls = getattr(fam, "model_class", None)
        if isinstance(cls, type):
            out.append(cls)
    return out
