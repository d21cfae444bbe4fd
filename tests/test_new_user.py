"""A new user's first hour: the set-up provides everything the bench and `mini` read, CI cannot go green on a
broken set-up (skips fail under CI=true), and the README's two commands are what CI runs."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SETUP = REPO / "scripts" / "setup_mini.sh"
INSTALL = REPO / "scripts" / "install.sh"


def _script_packages(script: Path, var: str) -> set[str]:
    """The apt packages a set-up script installs: the bash array `VAR=(...)`."""
    m = re.search(rf"^{var}=\(([^)]*)\)", script.read_text(), re.M)
    assert m, f"no {var}=(...) in {script}"
    return set(m.group(1).split())


def _installed_packages() -> set[str]:
    return _script_packages(SETUP, "APT_PKGS") | _script_packages(INSTALL, "BASE_PKGS")


def _needed_files() -> list[Path]:
    """Every Debian file the bench generator and the mini tests read."""
    from steer_audio.bench import listen_bench as lb

    files = [lb.ALLISON_DIR / f"digits/{d}.wav" for d in range(10)]
    files += [lb.ALLISON_DIR / f"letters/{c.lower()}.wav" for c in lb.LETTERS]
    files.append(lb.SOUNDFONT_CANDIDATES[0])  # the soundfont of timgm6mb-soundfont, picked first
    sys.path.insert(0, str(Path(__file__).parent))
    parts = importlib.import_module("test_mini_parts")
    files += [v for v in vars(parts).values() if isinstance(v, Path) and str(v).startswith("/usr/")]
    from steer_audio.bench import broad

    files.append(Path(os.path.realpath(broad.WORDS_FILE)))  # listen-broad's word list (wamerican)
    return files


TOOLS = ("sox", "espeak-ng", "fluidsynth", "flite")  # flite: listen-broad's second speech engine


def _dpkg_owner(path: Path) -> str:
    res = subprocess.run(["dpkg", "-S", str(path)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, f"{path}: no installed package provides it ({res.stderr.strip()})"
    return res.stdout.split(":", 1)[0].split(",")[0].strip()


def test_every_needed_file_comes_from_a_package_the_setup_installs() -> None:
    if shutil.which("dpkg") is None:
        pytest.skip("not a Debian/Ubuntu machine (dpkg missing)")
    pkgs = _installed_packages()
    for path in _needed_files():
        owner = _dpkg_owner(path)
        assert owner.split(":")[0] in pkgs, (
            f"{path} comes from {owner}, which scripts/setup_mini.sh does not install"
        )


def test_every_needed_tool_comes_from_a_package_the_setup_installs() -> None:
    if shutil.which("dpkg") is None:
        pytest.skip("not a Debian/Ubuntu machine (dpkg missing)")
    pkgs = _installed_packages()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"command -v {tool} finds nothing (scripts/setup_mini.sh installs it)"
        owner = _dpkg_owner(Path(os.path.realpath(found)))
        assert owner.split(":")[0] in pkgs, f"{tool} comes from {owner}, not from scripts/setup_mini.sh"


def test_setup_script_installs_without_recommends_and_lists_the_allison_package() -> None:
    """The failure this guards against: a file reachable only through a recommended package's link."""
    from steer_audio.bench import listen_bench as lb

    text = SETUP.read_text()
    assert "--no-install-recommends" in text
    assert "asterisk-core-sounds-en-wav" in _installed_packages()
    assert "/sounds/en/" not in str(lb.ALLISON_DIR) + "/"


# -- the README's two commands are what CI runs ----------------------------------------------------------------


def _readme_setup_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    sec = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    block = sec.split("```bash", 1)[1].split("```", 1)[0]
    return [ln.strip() for ln in block.strip().splitlines() if ln.strip()]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_them_verbatim() -> None:
    cmds = _readme_setup_commands()
    assert len(cmds) == 2, cmds
    ci_lines = [ln.strip() for ln in (REPO / ".ci" / "run").read_text().splitlines()]
    for c in cmds:
        assert c in ci_lines, f"{c!r} is not a line of .ci/run"
    ci = (REPO / ".ci" / "run").read_text()
    assert "ruff check" in ci and "ruff format --check" in ci and "mypy steer_audio" in ci
    for c in cmds:  # each command names a script that exists
        assert (REPO / c.split()[1]).is_file()


# -- the skip policy ------------------------------------------------------------------------------------------

POLICY_TEST = """
import shutil
import pytest

def test_needs_a_tool():
    if shutil.which("steer-audio-no-such-tool") is None:
        pytest.skip("steer-audio-no-such-tool missing (apt-get install it)")

@pytest.mark.skipif(shutil.which("steer-audio-no-such-tool") is None, reason="tool missing (marker)")
def test_marked():
    pass

def test_fine():
    assert True
"""


def _run_policy(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_policy_case.py").write_text(POLICY_TEST)
    shutil.copyfile(Path(__file__).parent / "conftest.py", tmp_path / "conftest.py")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_skip_for_a_missing_tool_fails_under_ci(tmp_path: Path) -> None:
    res = _run_policy(tmp_path, "true")
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "steer-audio-no-such-tool missing" in out and "tool missing (marker)" in out
    assert "1 passed" in out and "skipped" not in out.rsplit("\n", 3)[-2]


def test_skip_outside_ci_stays_a_skip_with_its_reason(tmp_path: Path) -> None:
    res = _run_policy(tmp_path, None)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "SKIPPED" in out and "steer-audio-no-such-tool missing" in out and "2 skipped" in out


# -- the main job's speed levers change no number ------------------------------------------------------------


def test_identical_rows_are_traced_once_with_identical_outputs(tiny, tmp_path: Path) -> None:
    """An all-zero clip under the silence negative gives two identical rows; tracing one of them and copying
    its outputs (the default) equals tracing both, bit for bit, and the batch really is smaller."""
    import numpy as np
    import soundfile as sf
    import torch
    from conftest import write_dataset

    from steer_audio.capture import run as crun
    from steer_audio.capture.prepare import PrepSpec, prepare_batch
    from steer_audio.capture.trace import envoys
    from steer_audio.data import mmau

    path = write_dataset(tmp_path, n=6)
    sf.write(tmp_path / "audio" / "item002.wav", np.zeros(16000, np.float32), 16000, subtype="FLOAT")
    sf.write(tmp_path / "audio" / "item004.wav", np.zeros(8000, np.float32), 16000, subtype="FLOAT")
    exs = mmau.load(path).examples
    spec = PrepSpec(tiny.audio_window_s, "silence", True, 0, tiny.prompt, tiny.geom.audio_token_id, None)
    b, _ = prepare_batch(tiny.processor, spec, exs)
    reduced, index = crun._duplicate_rows(b)
    assert reduced.model_inputs["input_ids"].shape[0] == 2 * len(exs) - 2
    assert index.tolist()[len(exs) + 2] == index.tolist()[2]
    ev = envoys(tiny.lm, tiny.arch, tiny.geom, tiny.name)
    once = crun.trace_batch(tiny, ev, b, dedupe=True)
    twice = crun.trace_batch(tiny, ev, b, dedupe=False)
    for k in crun.ROW_OUTPUTS:
        assert torch.equal(once[k], twice[k]), k


def test_capture_runs_without_autograd(tiny, dataset_path: Path) -> None:
    import torch

    from steer_audio.capture import run as crun
    from steer_audio.capture.prepare import PrepSpec, prepare_batch
    from steer_audio.capture.trace import envoys
    from steer_audio.data import mmau

    exs = mmau.load(dataset_path).examples[:3]
    spec = PrepSpec(tiny.audio_window_s, "silence", True, 0, tiny.prompt, tiny.geom.audio_token_id, None)
    b, _ = prepare_batch(tiny.processor, spec, exs)
    out = crun.trace_batch(tiny, envoys(tiny.lm, tiny.arch, tiny.geom, tiny.name), b)
    assert torch.is_grad_enabled() and all(not v.requires_grad for v in out.values())
