"""The sweep's orchestration (train every recipe, score every split, resume) against a stand-in for
`steer_audio.cli_mini` that records its calls and writes what the real commands write."""

import json
import sys
from pathlib import Path

import pytest

from steer_audio.errors import SteerAudioError
from steer_audio.train import sweep as sw

FAKE = r"""
import json, sys
from pathlib import Path
args = sys.argv[1:]
log = Path(sys.argv[0]).with_name("calls.jsonl")
with open(log, "a") as f:
    f.write(json.dumps(args) + "\n")
out = Path(args[args.index("--out") + 1]); out.mkdir(parents=True, exist_ok=True)
if args[0] == "train-mini":
    (out / "encoder_cache.safetensors").write_bytes(b"cache")
    if "--fail" in args:
        sys.exit(3)
    (out / "projector.safetensors").write_bytes(("w" + " ".join(args)).encode())
else:
    split = args[args.index("--split") + 1]
    acc = {"calib": 0.5, "test": 0.75, "heldout": 0.25}[split]
    s = {"neutral": {"n": 4, "accuracy": acc, "prior_follow": float("nan")},
         "misleading": {"n": 4, "accuracy": acc - 0.25, "prior_follow": 0.5}}
    (out / "summary.json").write_text(json.dumps({"by_condition": s}))
"""


@pytest.fixture
def fake_cli(tmp_path, monkeypatch):
    script = tmp_path / "fake" / "cli.py"
    script.parent.mkdir()
    script.write_text(FAKE)
    monkeypatch.setattr(sw, "_cli", lambda *a: [sys.executable, str(script), *a])
    return script.with_name("calls.jsonl")


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def test_sweep_trains_scores_and_resumes(tmp_path, fake_cli):
    rec = tmp_path / "r.txt"
    rec.write_text("# comment\nA\t--seed 0 --steps 5\nB\t--seed 1 --fail\n")
    runs, bench, ho = tmp_path / "runs", tmp_path / "bench", tmp_path / "ho"
    rows = sw.sweep(sw.read_recipes(rec), runs, bench, model="qmini", device="cpu", heldout=ho, eval_limit=2)
    calls = _calls(fake_cli)
    trains = [c for c in calls if c[0] == "train-mini"]
    assert [c[c.index("--out") + 1] for c in trains] == [str(runs / "warm"), str(runs / "A"), str(runs / "B")]
    assert trains[0][-2:] == ["--steps", "1"] and trains[1][-4:] == ["--seed", "0", "--steps", "5"]
    assert all(c[c.index("--model") + 1] == "qmini" for c in calls)
    evals = [
        (c[c.index("--split") + 1], c[c.index("--data") + 1], c[-1]) for c in calls if c[0] == "eval-mini"
    ]
    assert evals == [("calib", str(bench), "2"), ("test", str(bench), "2"), ("heldout", str(ho), "2")]
    a, b = rows
    assert b == {"name": "B", "failed": True}
    assert (
        a["calib"]["neutral"][:2] == [4, 0.5]
        and a["test_gap"] == 0.25
        and a["heldout"]["misleading"][1] == 0.0
    )
    assert a["opts"] == "--seed 0 --steps 5" and len(a["projector_sha256"]) == 64
    assert [json.loads(x) for x in (runs / "sweep.jsonl").read_text().splitlines()] == json.loads(
        json.dumps(rows)
    )
    # a rerun keeps the finished run and its scores: only B is trained again, nothing is rescored
    n = len(calls)
    sw.sweep(sw.read_recipes(rec), runs, bench, model="qmini", device="cpu", heldout=ho)
    again = _calls(fake_cli)[n:]
    assert [c[0] for c in again] == ["train-mini"] and again[0][again[0].index("--out") + 1] == str(
        runs / "B"
    )


def test_recipe_file_errors(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("A --seed 0\n")
    with pytest.raises(SteerAudioError, match="name<TAB>train-mini options"):
        sw.read_recipes(bad)
    bad.write_text("A\t--seed 0\nA\t--seed 1\n")
    with pytest.raises(SteerAudioError, match="share a name"):
        sw.read_recipes(bad)
    bad.write_text("# only comments\n")
    with pytest.raises(SteerAudioError, match="no recipes"):
        sw.read_recipes(bad)
