"""train-mini --extra-train: extra bench folders' training rows mixed into the batches (sampler.py),
without changing a single batch of the existing recipes (no extra folder, or a share of 0)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from steer_audio.bench import listen_bench as lb
from steer_audio.cli import app
from steer_audio.train.config import TrainConfig, TrainError
from steer_audio.train.sampler import index_twins, load_extra_rows, sample_batch
from steer_audio.train.trainer import _resume_state


def _reference_sample_batch(twins, cfg, step):  # type: ignore[no-untyped-def]
    """sample_batch as it was before --extra-train (commit e9d3509), verbatim."""
    rng = np.random.default_rng([cfg.seed, step])
    out = []
    for _ in range(cfg.batch_size):
        tw = twins[int(rng.integers(0, len(twins)))]
        u = rng.random()
        if u < cfg.silence:
            row = (
                tw["silence"]
                if rng.random() < 0.5
                else {
                    **tw["consistent"],
                    "audio_id": tw["silence"]["audio_id"],
                    "condition": "silence",
                    "id": tw["consistent"]["id"],
                }
            )
            out.append((row, row["prior_choice"]))
        elif rng.random() < cfg.no_hint:
            out.append((tw["neutral"], tw["neutral"]["answer"]))
        elif rng.random() < cfg.p:
            out.append((tw["consistent"], tw["consistent"]["answer"]))
        else:
            out.append((tw["misleading"], tw["misleading"]["answer"]))
    return out


def _rows(prefix: str, n: int, split: str = "train") -> list[dict]:
    rows = []
    for i in range(n):
        base = f"{prefix}-{i:03d}"
        for cond in lb.CONDITIONS:
            rows.append(
                {
                    "id": f"{base}-{cond}",
                    "audio_id": f"./audio/{base}{'-silence' if cond == 'silence' else ''}.wav",
                    "choices": ["a", "b", "c", "d"],
                    "answer": "abcd"[i % 4],
                    "prior_choice": None if cond == "neutral" else "abcd"[(i + 1) % 4],
                    "condition": cond,
                    "twin_of": f"{base}-neutral",
                    "split": split,
                }
            )
    return rows


def _folder(root: Path, rows: list[dict]) -> Path:
    root.mkdir(parents=True)
    (root / lb.DATA_JSON).write_text(json.dumps(rows))
    return root


def _twins(rows: list[dict]) -> list[dict[str, dict]]:
    return [t for _, t in sorted(index_twins(rows).items())]


CONFIGS = (
    TrainConfig(no_hint=1.0, silence=0.0, batch_size=8, seed=0),  # qmini's F-s0
    TrainConfig(p=0.97, no_hint=0.4, silence=0.1, batch_size=4, seed=3),  # mini's
)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_batches_without_extra_rows_are_the_old_ones(cfg) -> None:
    twins, extra = _twins(_rows("lb", 30)), _twins(_rows("broad", 20))
    zero = TrainConfig(**{**asdict(cfg), "extra_share": 0.0})
    for step in range(50):
        ref = _reference_sample_batch(twins, cfg, step)
        assert sample_batch(twins, cfg, step) == ref
        assert sample_batch(twins, zero, step, extra) == ref  # a share of 0 draws nothing either


def test_extra_rows_come_at_their_share() -> None:
    twins, extra = _twins(_rows("lb", 30)), _twins(_rows("broad", 20))
    for share in (0.25, 0.5, 1.0):
        cfg = TrainConfig(no_hint=1.0, silence=0.0, batch_size=8, extra_share=share)
        ids = [r["id"] for step in range(300) for r, _ in sample_batch(twins, cfg, step, extra)]
        frac = sum(i.startswith("broad-") for i in ids) / len(ids)
        assert abs(frac - share) < 0.04, (share, frac)  # 2,400 draws: 4 SE at share 0.5 is 0.04
        assert all(i.endswith("-neutral") for i in ids)  # no hint rows, no silence rows
        assert sample_batch(twins, cfg, 7, extra) == sample_batch(twins, cfg, 7, extra)
    targets = sample_batch(twins, TrainConfig(no_hint=1.0, silence=0.0, extra_share=1.0), 0, extra)
    assert all(t == r["answer"] for r, t in targets)


def test_load_extra_rows(tmp_path) -> None:
    a = _folder(tmp_path / "a", _rows("broad", 3) + _rows("other", 2, split="calib"))
    b = _folder(tmp_path / "b", _rows("more", 2))
    rows = load_extra_rows([a, b])
    assert len(rows) == 4 * (3 + 2) and {r["split"] for r in rows} == {"train"}
    assert rows[0]["audio_id"] == str(a.resolve() / "audio" / "broad-000.wav")
    assert all(Path(r["audio_id"]).is_absolute() for r in rows)
    assert Path("/elsewhere") / rows[0]["audio_id"] == Path(rows[0]["audio_id"])  # data_dir / id = id
    assert load_extra_rows([]) == []
    with pytest.raises(TrainError, match="share row ids"):
        load_extra_rows([a, a])
    with pytest.raises(TrainError, match="no listen-bench.json"):
        load_extra_rows([tmp_path / "missing"])
    with pytest.raises(TrainError, match="no training rows"):
        load_extra_rows([_folder(tmp_path / "c", _rows("x", 2, split="test"))])


def test_runs_saved_before_the_option_resume_unchanged() -> None:
    cfg = TrainConfig(no_hint=1.0, silence=0.0)
    old = {k: v for k, v in asdict(cfg).items() if k != "extra_share"}
    prev = {"step": 5, "config": old, "data_sha256": "x"}
    assert _resume_state(dict(prev), cfg, "x").get("schedule_changes") is None
    with pytest.raises(TrainError, match="extra_share"):
        _resume_state(dict(prev), TrainConfig(no_hint=1.0, silence=0.0, extra_share=0.2), "x")


def test_cli_refuses_an_extra_folder_without_rows(tmp_path) -> None:
    bench = _folder(tmp_path / "bench", _rows("lb", 1))
    res = CliRunner().invoke(
        app,
        [
            "train-mini",
            "--data",
            str(bench),
            "--extra-train",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert res.exit_code != 0 and "--extra-train" in res.output
    assert not (tmp_path / "r").exists()
