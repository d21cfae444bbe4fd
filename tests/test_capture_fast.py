"""Capture levers (steer_audio/capture/fast.py) on the tiny CPU model: each lever's capture equals today's
path (bit for bit where the kernels are the same, to float rounding for torch.compile), the host-built masks
really serve the traces, `restore()` gives back the untouched model, and a lever that cannot run here fails
with a message and leaves the model as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers.models.qwen2.modeling_qwen2 as modeling_qwen2

from steer_audio.capture import fast
from steer_audio.capture.cache import FIELDS
from steer_audio.capture.inputs import encode
from steer_audio.capture.run import run_capture
from steer_audio.capture.trace import capture_trace
from steer_audio.data import mmau
from steer_audio.data.audio import load_audio
from steer_audio.errors import SteerAudioError


def _capture(m, exs, out):
    return run_capture(m, exs, out, batch_size=4).load([e.id for e in exs])


@pytest.fixture(scope="module")
def exs(dataset_path):
    return mmau.load(dataset_path).examples[:8]


def test_no_sync_and_host_features_are_bit_identical_and_restore(tiny, exs, tmp_path):
    base = _capture(tiny, exs, tmp_path / "base")
    for name, lv in {
        "no_sync": fast.Levers(no_sync=True),
        "host": fast.Levers(features="host"),
        "both": fast.Levers(features="host", no_sync=True),
    }.items():
        with fast.install(tiny, lv) as inst:
            got = _capture(tiny, exs, tmp_path / name)
        for k in FIELDS:
            assert torch.equal(got[k], base[k]), (name, k)
        if lv.no_sync:  # the host-built encoder mask served every batch (2 batches of 4 pairs)
            assert inst.hits.get("encoder_mask") == 2
    assert "inputs_to_device" not in vars(tiny)
    assert "_torch_extract_fbank_features" not in vars(tiny.processor.feature_extractor)
    assert modeling_qwen2.create_causal_mask.__module__ == "transformers.masking_utils"
    again = _capture(tiny, exs, tmp_path / "again")
    assert all(torch.equal(again[k], base[k]) for k in FIELDS)


def test_no_sync_masks_serve_the_trace(tiny, exs):
    """At the trace: both host-built masks are the ones the model uses, and the outputs are bit-identical."""
    b = encode(
        tiny.processor,
        exs[:4],
        [load_audio(e.audio_path) for e in exs[:4]],
        [np.zeros_like(load_audio(e.audio_path)) for e in exs[:4]],
        tiny.prompt,
        tiny.geom.audio_token_id,
    )
    assert not bool(b.model_inputs["attention_mask"].all())  # padded rows: the decoder mask is materialised
    ev = tiny.envoys()

    def trace():
        with torch.no_grad():
            inputs = tiny.model_inputs(b.model_inputs, b.row_keys)
            return capture_trace(tiny.lm, ev, tiny.geom, inputs, b.audio_mask, b.cand)

    want = trace()
    with fast.install(tiny, fast.Levers(no_sync=True)) as inst:
        got = trace()
    assert inst.hits == {"encoder_mask": 1, "decoder_mask": 1}
    for k in ("resid", "z", "mass", "cand_logits"):
        assert torch.equal(got[k], want[k]), k


def test_compile_equals_eager_to_float_rounding(tiny, exs, tmp_path):
    base = _capture(tiny, exs[:4], tmp_path / "base")
    _, layers = fast.decoder(tiny)
    before = [vars(layers[0].mlp)["__nnsight__"].body, vars(layers[0].input_layernorm)["__nnsight__"].body]
    with fast.install(tiny, fast.Levers(compile=True)):
        assert vars(layers[0].mlp)["__nnsight__"].body is not before[0]  # the body nnsight runs is compiled
        got = _capture(tiny, exs[:4], tmp_path / "compiled")
    for k in ("resid_a", "resid_n", "dz", "mass_a", "mass_n"):
        torch.testing.assert_close(got[k], base[k], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(
        got["logits_a"].nan_to_num(), base["logits_a"].nan_to_num(), atol=1e-5, rtol=1e-4
    )
    assert [
        vars(layers[0].mlp)["__nnsight__"].body,
        vars(layers[0].input_layernorm)["__nnsight__"].body,
    ] == before


def test_liger_needs_cuda_and_leaves_the_model_untouched(tiny):
    with pytest.raises(SteerAudioError, match="CUDA"):
        fast.install(tiny, fast.Levers(no_sync=True, liger=True))
    assert "inputs_to_device" not in vars(tiny)  # the no_sync part was undone too
    assert modeling_qwen2.create_causal_mask.__module__ == "transformers.masking_utils"
    with pytest.raises(SteerAudioError, match="features"):
        fast.Levers(features="gpu")
