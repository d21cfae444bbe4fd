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


def _eager_record(fn, x, mask):
    """A stand-in for `fast.record_cuda_graph` on the CPU: `replay()` reruns `fn` on the static buffers and writes
    the static output in place, which is what a replayed CUDA graph does."""
    out = fn(x, mask)
    return fast.Recorded(lambda: out.copy_(fn(x, mask)), x, mask, out)


def test_graph_cache_records_a_shape_the_second_time_and_never_hands_out_its_buffer():
    calls = []

    def fn(x, mask):
        calls.append(x.shape)
        return x * 2 + (0 if mask is None else mask)

    cache = fast.GraphCache(fn, _eager_record, max_graphs=1)
    a, b, c = torch.ones(2, 3), torch.full((2, 3), 5.0), torch.full((2, 3), 7.0)
    ya = cache(a, None)  # first sight of the shape: eager, nothing recorded
    assert cache.recorded == 0 and cache.replayed == 0
    yb = cache(b, None)  # second: recorded, then replayed on b
    yc = cache(c, None)  # third: replayed on c
    assert (cache.recorded, cache.replayed) == (1, 2)
    assert (
        torch.equal(ya, a * 2) and torch.equal(yb, b * 2) and torch.equal(yc, c * 2)
    )  # yb not overwritten by c
    mask = torch.zeros(2, 3)
    cache(a, mask)  # another key (a mask) is another graph; with max_graphs=1 the first one is dropped
    cache(a, mask)
    assert cache.recorded == 2 and len(cache.graphs) == 1
    assert torch.equal(cache(c, mask + 1), c * 2 + 1)  # the mask is an input of the replay too
    cache(b, None)  # the first graph was dropped: recorded again
    assert cache.recorded == 3


def test_encoder_graph_equals_the_eager_encoder_in_a_capture(tiny, exs, tmp_path):
    base = _capture(tiny, exs[:4], tmp_path / "base")
    inst = fast.Installed(fast.Levers(encoder_graph=True))
    try:
        fast.graph_encoder(tiny, inst, _eager_record)
        first = _capture(tiny, exs[:4], tmp_path / "first")  # the batch shape seen once: eager
        again = _capture(tiny, exs[:4], tmp_path / "again")  # seen twice: recorded and replayed
    finally:
        inst.restore()
    assert inst.hits == {"encoder_eager": 1, "encoder_graph": 1}
    assert inst.graphs is not None and inst.graphs.recorded == 1
    for k in FIELDS:
        assert torch.equal(first[k], base[k]), k
        assert torch.equal(again[k], base[k]), k
    assert "encode" not in vars(tiny._embedder)  # restored


def test_encoder_graph_needs_cuda(tiny):
    with pytest.raises(SteerAudioError, match="CUDA"):
        fast.install(tiny, fast.Levers(encoder_graph=True))
    assert tiny._embedder is None or "encode" not in vars(tiny._embedder)


def test_clip_features_are_shorter_and_the_capture_is_bit_identical(tiny, exs, tmp_path):
    from steer_audio.capture.prepare import prep_spec, prepare_batch

    base = _capture(tiny, exs, tmp_path / "base")
    with fast.install(tiny, fast.Levers(clip_features=True)):
        spec = prep_spec(tiny, "silence", strict=False, seed=0)
        b, _ = prepare_batch(tiny.processor, spec, exs[:4])
        got = _capture(tiny, exs, tmp_path / "clip")
    assert spec.clip_features and not prep_spec(tiny, "silence", False, 0).clip_features  # restored
    window = tiny.processor.feature_extractor.n_samples // tiny.processor.feature_extractor.hop_length
    frames = b.model_inputs["input_features"].shape[-1]
    assert frames < window  # the test clips are shorter than the window
    for k in FIELDS:
        assert torch.equal(got[k], base[k]), k


def test_log_mel_is_whispers_torch_features_op_for_op(tiny):
    fe = tiny.processor.feature_extractor
    rng = np.random.default_rng(3)
    wav = (0.1 * rng.standard_normal((3, 16000 * 2))).astype(np.float32)
    wav[2] = 0.0  # a silent row: the per-row ceiling comes from the floor
    want = fe._torch_extract_fbank_features(wav, "cpu")
    got = fast.log_mel(fe, torch.from_numpy(wav))
    assert torch.equal(got, torch.from_numpy(want))


def test_features_at_launch_are_bit_identical_and_the_worker_only_pads(tiny, exs, tmp_path):
    from steer_audio.capture.prepare import prep_spec, prepare_batch

    base = _capture(tiny, exs, tmp_path / "base")
    for lv in (
        fast.Levers(features="launch"),
        fast.Levers(features="launch", no_sync=True, clip_features=True),
    ):
        with fast.install(tiny, lv) as inst:
            b, _ = prepare_batch(tiny.processor, prep_spec(tiny, "silence", False, 0), exs[:4])
            assert b.model_inputs["input_features"].ndim == 2  # [rows, samples]: waveforms, no log-mel yet
            got = _capture(tiny, exs, tmp_path / f"launch{int(lv.no_sync)}")
        assert inst.hits["features_at_launch"] == 2  # both batches of 4 pairs
        for k in FIELDS:
            assert torch.equal(got[k], base[k]), (lv, k)
    assert "_torch_extract_fbank_features" not in vars(tiny.processor.feature_extractor)
    assert "inputs_to_device" not in vars(tiny)


def test_capture_levers_option_resolves_per_model_and_names_bad_levers(tiny):
    from types import SimpleNamespace

    from steer_audio.capture.levers import parse_levers

    assert fast.resolve("auto", tiny) == fast.Levers()  # a CPU model: nothing to turn on
    gpu = SimpleNamespace(remote=False, device="cuda:0", uses_fast_audio=True, processor=tiny.processor)
    assert fast.resolve("auto", gpu) == fast.Levers(
        features="launch", no_sync=True, encoder_graph=True, clip_features=True
    )
    assert fast.resolve("auto", SimpleNamespace(**{**vars(gpu), "remote": "http://x"})) == fast.Levers()
    assert parse_levers("no_sync, liger,features=host") == fast.Levers(
        features="host", no_sync=True, liger=True
    )
    assert parse_levers("none") == fast.Levers()
    for bad in ("no_sync,turbo", "features", "no_sync=1", "features=gpu"):
        with pytest.raises(SteerAudioError, match="--capture-levers"):
            parse_levers(bad)
    with fast.install(tiny, fast.Levers()):  # a caller's own install is kept: auto adds nothing on top
        assert fast.resolve("auto", SimpleNamespace(**vars(gpu))) != fast.Levers()
        assert fast.resolve("auto", tiny) == fast.Levers()


def test_run_capture_turns_its_levers_on_for_the_run_only(tiny, exs, tmp_path):
    base = _capture(tiny, exs, tmp_path / "base")
    got = run_capture(
        tiny, exs, tmp_path / "lev", batch_size=4, levers="no_sync,features=launch,clip_features"
    )
    data = got.load([e.id for e in exs])
    for k in FIELDS:
        assert torch.equal(data[k], base[k]), k
    assert "inputs_to_device" not in vars(tiny) and not tiny.clip_features  # restored after the run
