"""train-mini on the real mini: a run interrupted after a checkpoint and resumed ends with the same projector,
bit for bit, as the same run left alone (the reference); the recipe records where it ran."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from steer_audio.bench import listen_bench as lb
from steer_audio.models.mini import assemble
from steer_audio.train import train_mini as tm
from steer_audio.train import trainer  # the loop looks its helpers up here

pytestmark = pytest.mark.mini


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    if not assemble.is_set_up():
        pytest.skip("mini cache absent; run scripts/setup_mini.sh (steer-audio mini-setup)")
    if (
        any(shutil.which(t) is None for t in ("sox", "espeak-ng", "fluidsynth"))
        or not lb.ALLISON_DIR.is_dir()
    ):
        pytest.skip("listen-bench tools missing (scripts/setup_mini.sh)")
    data = tmp_path_factory.mktemp("lb")
    lb.generate(data, lb.BenchConfig(n_train=1, n_calib=1, n_test=0))
    return data


CFG = tm.TrainConfig(steps=4, batch_size=2, checkpoint_every=2, eval_every=4, eval_items=2, lr=3e-3, warmup=1)


def test_interrupted_run_resumes_to_the_same_projector(bench, tmp_path, monkeypatch) -> None:
    ref = tm.train(bench, tmp_path / "ref", CFG)
    assert ref["hardware"]["device"] == "cpu"

    real_save = trainer._save_checkpoint

    def save_then_stop(out, model, opt, state):
        real_save(out, model, opt, state)
        if state["step"] == 2:
            raise KeyboardInterrupt  # killed right after the step-2 checkpoint

    monkeypatch.setattr(trainer, "_save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        tm.train(bench, tmp_path / "cut", CFG)
    assert json.loads((tmp_path / "cut" / tm.STATE).read_text())["step"] == 2
    assert not (tmp_path / "cut" / assemble.PROJECTOR_FILE).exists()
    monkeypatch.setattr(trainer, "_save_checkpoint", real_save)

    with pytest.raises(tm.TrainError, match="--resume"):
        tm.train(bench, tmp_path / "cut", CFG)  # never overwrites a run silently
    steps_run: list[int] = []
    real_sample = tm.sample_batch
    monkeypatch.setattr(
        trainer,
        "sample_batch",
        lambda tw, cfg, step, *extra: steps_run.append(step) or real_sample(tw, cfg, step, *extra),
    )
    tm.train(bench, tmp_path / "cut", CFG, resume=True)
    assert steps_run == [2, 3]  # it continued from the checkpoint instead of starting again

    a = load_file(str(tmp_path / "ref" / assemble.PROJECTOR_FILE))
    b = load_file(str(tmp_path / "cut" / assemble.PROJECTOR_FILE))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert a[tm.PROJECTOR_PREFIX + "linear.weight"].abs().sum() > 0


def test_the_equivalence_guard_refuses_wrong_features(bench, tmp_path, monkeypatch) -> None:
    """Training starts only if the cached-feature forward reproduces the model's own forward: features that
    are off (here halved) stop it before the first step, with the measured difference."""
    real = trainer.last_logits
    monkeypatch.setattr(
        trainer, "last_logits", lambda model, ids, feats: real(model, ids, [f * 0.5 for f in feats])
    )
    with pytest.raises(tm.TrainError, match="cached-feature forward differs from the model forward"):
        tm.train(bench, tmp_path / "bad", CFG)
    assert not (tmp_path / "bad" / assemble.PROJECTOR_FILE).exists()
