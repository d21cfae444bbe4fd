"""The held-out steering check's file: listen-bench calibration rows + every listen-heldout row as the
evaluation split, audio resolved to the files of each folder."""

import json
from pathlib import Path

import pytest

from steer_audio.bench.heldout import steering_check
from steer_audio.data import mmau
from steer_audio.errors import SteerAudioError


def _row(i: str, split: str, cond: str = "neutral") -> dict:
    return {
        "id": i,
        "audio_id": f"./audio/{i}.wav",
        "question": "q?",
        "choices": ["a", "b"],
        "answer": "a",
        "split": split,
        "condition": cond,
    }


def test_steering_check_keeps_calib_and_heldout_rows_only(tmp_path: Path):
    lb, ho = tmp_path / "lb", tmp_path / "ho"
    for d, rows in (
        (lb, [_row("c1", "calib"), _row("t1", "test"), _row("c2", "calib", "silence")]),
        (ho, [_row("h1", "heldout"), _row("h1s", "heldout", "silence")]),
    ):
        (d / "audio").mkdir(parents=True)
        for r in rows:
            (d / "audio" / f"{r['id']}.wav").write_bytes(b"")
        (d / "bench.json").write_text(json.dumps(rows))
    out = tmp_path / "check.json"
    assert steering_check(lb / "bench.json", ho / "bench.json", out) == {"calib": 2, "test": 2}
    ds = mmau.load(out)
    by = {e.id: e for e in ds.examples}
    assert set(by) == {"c1", "c2", "h1", "h1s"}  # listen-bench's test split is not in the check
    assert by["h1"].audio_path == ho / "audio" / "h1.wav" and by["c1"].audio_path == lb / "audio" / "c1.wav"
    calib, evals = mmau.by_split_field(ds.examples, "calib", "test")
    assert [e.id for e in calib] == ["c1", "c2"] and [e.id for e in evals] == ["h1", "h1s"]


def test_steering_check_refuses_a_file_without_heldout_rows(tmp_path: Path):
    (tmp_path / "a.json").write_text(json.dumps([_row("c1", "calib")]))
    with pytest.raises(SteerAudioError, match="heldout"):
        steering_check(tmp_path / "a.json", tmp_path / "a.json", tmp_path / "o.json")
