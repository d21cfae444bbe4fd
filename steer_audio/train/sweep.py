"""Train several recipes of an embedded model at once, then score each: `python -m steer_audio.train.sweep`.

A recipe file holds one ``name<TAB>train-mini options`` line per run (``#`` comments). Every run gets
``--model``, ``--data`` and ``--device``; the first run's encoder cache is built once by a one-step warm run
and copied into each run folder. Runs train concurrently on a GPU (one at a time on the CPU), then each is
scored by ``eval-mini`` on the calibration and test splits (and on a held-out bench's ``heldout`` split).
A rerun resumes: a finished run or score is kept, an unfinished run continues from its checkpoint. Writes
``RUNS/<name>/{projector.safetensors, recipe.json, calib/, test/, heldout/}`` and ``RUNS/sweep.jsonl`` (one
row per run: options, wall seconds, accuracy and prior-follow per condition, the projector's sha256). The
recipe is chosen on calibration; test numbers are printed for every run so that nothing is hidden."""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SteerAudioError
from ..io import read_json, sha256_file, write_text

SPLITS = ("calib", "test", "heldout")
CACHE = "encoder_cache.safetensors"
PROJECTOR = "projector.safetensors"


@dataclass(frozen=True)
class Run:
    name: str
    options: tuple[str, ...]


def read_recipes(path: Path) -> list[Run]:
    runs = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, opts = line.partition("\t")
        if not opts.strip():
            raise SteerAudioError(f"{path}:{i}: expected 'name<TAB>train-mini options', got {line!r}")
        runs.append(Run(name.strip(), tuple(shlex.split(opts))))
    if not runs:
        raise SteerAudioError(f"{path}: no recipes")
    if len({r.name for r in runs}) != len(runs):
        raise SteerAudioError(f"{path}: two recipes share a name")
    return runs


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "steer_audio.cli_mini", *args]


def _row(run_dir: Path, run: Run) -> dict[str, Any]:
    wall = run_dir / "wall_s"
    row: dict[str, Any] = {
        "name": run.name,
        "opts": " ".join(run.options),
        "wall_s": float(wall.read_text().split()[-1]) if wall.is_file() else math.nan,
    }
    for split in SPLITS:
        f = run_dir / split / "summary.json"
        if not f.is_file():
            continue
        s = read_json(f)["by_condition"]
        row[split] = {k: [v["n"], round(v["accuracy"], 3), round(v["prior_follow"], 3)] for k, v in s.items()}
        if "misleading" in s:
            row[split + "_gap"] = round(s["neutral"]["accuracy"] - s["misleading"]["accuracy"], 3)
    row["projector_sha256"] = sha256_file(run_dir / PROJECTOR)
    return row


def sweep(
    recipes: Sequence[Run],
    runs_dir: Path,
    bench: Path,
    model: str = "mini",
    device: str = "cuda",
    heldout: Path | None = None,
    eval_limit: int | None = None,
) -> list[dict[str, Any]]:
    """Train every recipe (concurrently unless on the CPU), score each, write and return sweep.jsonl's rows."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    common = ["--model", model, "--data", str(bench), "--device", device]
    if not (runs_dir / CACHE).is_file():  # one encoder pass serves every run
        shutil.rmtree(runs_dir / "warm", ignore_errors=True)
        with open(runs_dir / "warm.log", "wb") as warm_log:
            rc = subprocess.call(
                _cli("train-mini", *common, "--out", str(runs_dir / "warm"), "--steps", "1"),
                stdout=warm_log,
                stderr=warm_log,
            )
        if rc != 0:
            raise SteerAudioError(
                f"the warm run failed: {(runs_dir / 'warm.log').read_text(errors='replace')[-2000:]}"
            )
        shutil.copy(runs_dir / "warm" / CACHE, runs_dir / CACHE)
    serial = device == "cpu"  # one model in memory at a time on a CPU machine
    procs: list[tuple[Run, subprocess.Popen[bytes], float]] = []
    for run in recipes:
        d = runs_dir / run.name
        if (d / PROJECTOR).is_file() and not (d / "state.json").is_file():
            continue  # finished earlier
        d.mkdir(exist_ok=True)
        if not (d / CACHE).is_file():
            shutil.copy(runs_dir / CACHE, d / CACHE)
        resume = ["--resume"] if (d / "state.json").is_file() else []
        log = open(d / "train.log", "wb")  # noqa: SIM115 - closed when the process ends
        p = subprocess.Popen(
            _cli("train-mini", *common, "--out", str(d), *resume, *run.options), stdout=log, stderr=log
        )
        procs.append((run, p, time.time()))
        if serial:
            _finish(procs.pop(), runs_dir)
    for item in procs:
        _finish(item, runs_dir)
    scoring: list[subprocess.Popen[bytes]] = []
    limit = ["--limit", str(eval_limit)] if eval_limit else []
    for run in recipes:
        d = runs_dir / run.name
        if not (d / PROJECTOR).is_file():
            continue
        for split in SPLITS:
            data = heldout if split == "heldout" else bench
            if data is None or (d / split / "summary.json").is_file():
                continue
            args = ["eval-mini", "--model", model, "--data", str(data), "--weights", str(d / PROJECTOR)]
            args += ["--split", split, "--out", str(d / split), "--device", device, *limit]
            with open(d / f"eval-{split}.log", "wb") as log:
                p = subprocess.Popen(_cli(*args), stdout=log, stderr=log)
            scoring.append(p)
            if serial:
                p.wait()
    for p in scoring:
        p.wait()
    rows = [
        _row(runs_dir / r.name, r)
        if (runs_dir / r.name / PROJECTOR).is_file()
        else {"name": r.name, "failed": True}
        for r in recipes
    ]
    write_text(runs_dir / "sweep.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return rows


def _finish(item: tuple[Run, subprocess.Popen[bytes], float], runs_dir: Path) -> None:
    run, p, t0 = item
    p.wait()
    write_text(runs_dir / run.name / "wall_s", f"{round(time.time() - t0)}\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m steer_audio.train.sweep", description=__doc__)
    ap.add_argument(
        "--recipes", type=Path, required=True, help="name<TAB>train-mini options, one run per line"
    )
    ap.add_argument("--runs", type=Path, required=True, help="one folder per run and sweep.jsonl go here")
    ap.add_argument(
        "--bench", type=Path, required=True, help="the listen-bench folder (train/calib/test splits)"
    )
    ap.add_argument("--model", default="mini", help="the embedded model (mini, qmini)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument(
        "--heldout", type=Path, default=None, help="a held-out bench folder: also score its split"
    )
    ap.add_argument("--eval-limit", type=int, default=None, help="first N base items per template (dry runs)")
    a = ap.parse_args(argv)
    try:
        rows = sweep(read_recipes(a.recipes), a.runs, a.bench, a.model, a.device, a.heldout, a.eval_limit)
    except SteerAudioError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    sys.stdout.write("".join(json.dumps(r) + "\n" for r in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
