"""Data sets the CLI knows by name (besides the bundled MMAU JSONs `mmau` / `mmau-v1`, which pipeline.py resolves):

* ``listen-bench``: the main job's listen-bench (calibration + test splits, no training split), generated once
  by ``scripts/setup_mini.sh`` into ``$STEER_AUDIO_CACHE/listen-bench-main`` (``~/.cache/steer_audio/...``);
  the default ``--data`` of the CLI, next to the default model ``mini``.
* ``demo``: a few synthetic clips written into the run directory (tests and smoke runs with ``tiny``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import SteerAudioError

#: base items per template of the main job's bench (x 10 templates x 4 twin conditions = 120 items a split)
MAIN_BENCH_SIZES = {"n_train": 0, "n_calib": 3, "n_test": 3}
SETUP_HINT = "run `bash scripts/setup_mini.sh`"


def main_bench_dir() -> Path:
    """``$STEER_AUDIO_CACHE/listen-bench-main`` or ``~/.cache/steer_audio/listen-bench-main``."""
    env = os.environ.get("STEER_AUDIO_CACHE")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "steer_audio"
    return base / "listen-bench-main"


def _listen_bench(out: Path) -> Path:
    from ..bench.listen_bench import DATA_JSON

    path = main_bench_dir() / DATA_JSON
    if not path.is_file():
        raise SteerAudioError(
            f"listen-bench (the default --data) is not generated yet ({path} missing): {SETUP_HINT}"
        )
    return path


def _demo(out: Path) -> Path:
    from .demo import write_demo

    return write_demo(out / "demo-data")


#: name -> a function of the run directory that returns the data file (writing or checking it)
NAMED: dict[str, Callable[[Path], Path]] = {"listen-bench": _listen_bench, "demo": _demo}


def resolve(data: str, out: Path) -> str:
    """The data file for ``--data``: a named set resolved here, anything else unchanged."""
    fn = NAMED.get(data)
    return str(fn(out)) if fn is not None else data
