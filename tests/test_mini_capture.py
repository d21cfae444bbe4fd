"""The capture on the embedded `mini` model (Gemma-3 decoder: sliding-window layers, (1 + w) RMSNorm, GQA 4:1)
equals the plain-PyTorch reference, and cached steering equals its real forward. Needs `steer-audio mini-setup`."""

from __future__ import annotations

import os

import pytest
import torch

from steer_audio.capture.run import run_capture
from steer_audio.data import mmau

pytestmark = pytest.mark.mini


@pytest.fixture(scope="module")
def mini_eager():
    from steer_audio.errors import SteerAudioError
    from steer_audio.models import loaded

    try:
        return loaded.load("mini", device="cpu", weights=os.environ.get("STEER_AUDIO_MINI_WEIGHTS"))
    except SteerAudioError as e:
        pytest.skip(f"mini is not available: {e}")


def test_mini_capture_matches_reference(mini_eager, dataset_path, tmp_path):
    from reference import plain_reference

    m = mini_eager
    m.lm._module.set_attn_implementation("eager")
    try:
        assert m.arch.key == "qwen2_audio/gemma3_text" and m.arch.norm_kind == "rms_one_plus"
        ds = mmau.load(dataset_path)
        exs = [e for e in ds.examples if len(e.choices) == 4][:2]
        from steer_audio.data.prompts import prompt_spec

        m.prompt = prompt_spec("letters")  # the test items' options share first tokens; letters are distinct
        data = run_capture(m, exs, tmp_path / "cap", batch_size=2).load([e.id for e in exs])
        from steer_audio.data.audio import load_audio

        refs = plain_reference(m, exs, [load_audio(e.audio_path) for e in exs])
        for i, ref in enumerate(refs):
            torch.testing.assert_close(data["resid_a"][i], ref["resid"], atol=2e-4, rtol=1e-4)
            torch.testing.assert_close(data["mass_a"][i], ref["mass"], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(data["logits_a"][i, :4], ref["logits"], atol=2e-4, rtol=1e-4)
        from steer_audio.capture.cache import CaptureCache
        from steer_audio.steer import cached

        ro = CaptureCache(tmp_path / "cap").readout()
        torch.testing.assert_close(
            cached.score(data, ro, None, [0.0])[0], data["logits_a"], atol=2e-4, rtol=1e-4
        )
    finally:
        m.lm._module.set_attn_implementation("sdpa")
