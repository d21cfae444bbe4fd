"""The capture on each embedded model equals the plain-PyTorch reference (eager attention, hooks), and cached
steering equals its real forward:

* `mini` (Gemma-3 decoder: sliding-window layers, (1 + w) RMSNorm, GQA 4:1), with its trained projector (or
  $STEER_AUDIO_MINI_WEIGHTS); needs `steer-audio mini-setup`;
* `qmini` (Qwen2 decoder, GQA 7:1, the architecture-table row of Qwen2-Audio), with a seeded random projector
  (the equality holds for any weights; a trained one is not needed); needs `steer-audio mini-setup --model qmini`.

Both read out by letters: the fixture's options ("option 0", ...) share their first token under both BPEs,
and the equality checked here does not depend on which candidate tokens are read out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from steer_audio.capture.run import run_capture
from steer_audio.data import mmau

pytestmark = pytest.mark.mini


def _mini(tmp: Path):
    from steer_audio.data.prompts import prompt_spec
    from steer_audio.models import loaded

    m = loaded.load("mini", device="cpu", weights=os.environ.get("STEER_AUDIO_MINI_WEIGHTS"))
    m.prompt = prompt_spec("letters")
    return m


def _qmini(tmp: Path):
    from safetensors.torch import save_file

    from steer_audio.models import loaded
    from steer_audio.models.qmini import assemble as qa

    if not qa.is_set_up():
        pytest.skip("qmini is not set up (steer-audio mini-setup --model qmini)")
    g = torch.Generator().manual_seed(0)
    w = tmp / "projector.safetensors"
    save_file(
        {
            "model.multi_modal_projector.linear.weight": torch.randn(896, 512, generator=g) * 0.02,
            "model.multi_modal_projector.linear.bias": torch.zeros(896),
        },
        str(w),
    )
    return loaded.load("qmini", device="cpu", weights=str(w), scoring="letters")


#: model -> (loader, architecture-table key, norm kind, (layers, heads, kv heads) or None where not pinned)
MODELS = {
    "mini": (_mini, "qwen2_audio/gemma3_text", "rms_one_plus", None),
    "qmini": (_qmini, "qwen2_audio/qwen2", "rms", (24, 14, 2)),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def embedded_eager(request, tmp_path_factory):
    from steer_audio.errors import SteerAudioError

    load, key, norm, geom = MODELS[request.param]
    try:
        m = load(tmp_path_factory.mktemp(request.param))
    except SteerAudioError as e:
        pytest.skip(f"{request.param} is not available: {e}")
    return m, key, norm, geom


def test_embedded_capture_matches_reference(embedded_eager, dataset_path, tmp_path):
    from reference import plain_reference

    m, key, norm, geom = embedded_eager
    m.lm._module.set_attn_implementation("eager")
    try:
        assert m.arch.key == key and m.arch.norm_kind == norm
        if geom is not None:
            assert (m.geom.n_layers, m.geom.n_heads, m.geom.n_kv_heads) == geom
        ds = mmau.load(dataset_path)
        exs = [e for e in ds.examples if len(e.choices) == 4][:2]
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
            cached.readout_logits(data, ro, data["resid_a"][:, -1].float()),
            data["logits_a"],
            atol=2e-4,
            rtol=1e-4,
        )
    finally:
        m.lm._module.set_attn_implementation("sdpa")
