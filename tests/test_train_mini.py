"""Training-step pieces of train-mini, on the tiny random-weight Qwen2-Audio (no mini cache needed)."""

from __future__ import annotations

import torch

from steer_audio.models import tiny
from steer_audio.train.train_mini import candidate_logits, last_logits


def _batch(model):
    audio_id = model.config.audio_token_id
    g = torch.Generator().manual_seed(1)
    d_audio = model.config.audio_config.d_model
    n_audio = [5, 3]
    ids = [
        [11, 12, audio_id, *[audio_id] * (n_audio[0] - 1), 40, 41, 42],
        [13, audio_id, *[audio_id] * (n_audio[1] - 1), 43],
    ]
    feats = [torch.randn(n, d_audio, generator=g) for n in n_audio]
    cands = torch.tensor([[32, 33, 34, 35], [35, 34, 36, 37]])
    return ids, feats, cands


def test_candidate_logits_equal_full_vocabulary_logits_and_gradient() -> None:
    model = tiny.build_model()
    proj = model.model.multi_modal_projector.linear.weight
    proj.requires_grad_(True)
    ids, feats, cands = _batch(model)
    tpos = torch.tensor([2, 0])

    full = last_logits(model, ids, feats)
    ref = full.gather(1, cands)
    torch.nn.functional.cross_entropy(ref, tpos).backward()
    g_ref = proj.grad.clone()
    proj.grad = None

    mine = candidate_logits(model, ids, feats, cands)
    torch.nn.functional.cross_entropy(mine, tpos).backward()

    torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(proj.grad, g_ref, rtol=1e-4, atol=1e-6)
    assert g_ref.abs().sum() > 0  # the audio features reach the loss


def test_resolve_device_accepts_cpu_and_refuses_unknown_or_absent_devices() -> None:
    import pytest

    from steer_audio.train.train_mini import TrainError, resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(TrainError, match="unknown device"):
        resolve_device("gpu0")
    with pytest.raises(TrainError, match="unsupported device"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(TrainError, match="no CUDA device"):
            resolve_device("cuda")
    else:
        with pytest.raises(TrainError, match="only"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_train_mini_cli_refuses_an_absent_device_with_one_message(tmp_path) -> None:
    import pytest
    from typer.testing import CliRunner

    from steer_audio.cli import app

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "listen-bench.json").write_text("[]")
    r = CliRunner().invoke(
        app, ["train-mini", "--data", str(bench), "--out", str(tmp_path / "run"), "--device", "cuda"]
    )
    assert r.exit_code == 1
    assert "no CUDA device" in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "run" / "state.json").exists()


def test_device_policy_leaves_tf32_settings_as_it_found_them() -> None:
    from steer_audio.train.device import fp32_precision, resolve_device

    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = True
        resolve_device("cpu")
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        with fp32_precision():
            assert not torch.backends.cudnn.allow_tf32
            assert not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old
