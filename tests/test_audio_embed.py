"""The fast audio path (encoder on the clip's own length, silence encoded once per length) gives the same
decoder input as the model's own forward, which runs the encoder on the whole padded window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from steer_audio.capture.inputs import encode
from steer_audio.capture.run import run_capture
from steer_audio.data import mmau
from steer_audio.data.audio import load_audio
from steer_audio.models import loaded
from steer_audio.models.audio_embed import AudioEmbedder, take_rows


def _hf_inputs_embeds(module, inputs):
    """The decoder's inputs_embeds as the HF forward builds them (full window, masked keys)."""
    got = {}

    def grab(mod, args, kwargs):
        got["x"] = kwargs["inputs_embeds"].detach().clone()

    h = module.model.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            module(**inputs, use_cache=False)
    finally:
        h.remove()
    return got["x"]


def _clips(m, dataset_path):
    ds = mmau.load(dataset_path)
    exs = ds.examples[:4]
    wavs = [load_audio(e.audio_path) for e in exs]
    win = int(m.audio_window_s * 16000)
    rng = np.random.default_rng(1)
    wavs[3] = (0.1 * rng.standard_normal(win)).astype(np.float32)  # a clip that fills the whole window
    return exs, wavs


def test_embeddings_equal_the_models_own_forward(tiny, dataset_path):
    exs, wavs = _clips(tiny, dataset_path)
    negs = [np.zeros_like(w) for w in wavs]
    b = encode(tiny.processor, exs, wavs, negs, tiny.prompt, tiny.geom.audio_token_id)
    assert b.row_keys == [None] * 4 + ["zeros"] * 4  # audio rows are not silent here
    ref = _hf_inputs_embeds(tiny.lm._module, b.model_inputs)
    emb = AudioEmbedder(tiny.lm._module, tiny.arch, tiny.name)
    out = emb(dict(b.model_inputs), b.row_keys)
    assert "input_features" not in out and out["inputs_embeds"].shape == ref.shape
    torch.testing.assert_close(out["inputs_embeds"], ref, atol=1e-5, rtol=1e-5)
    # the audio rows have different lengths: the encoder really ran shorter than the window for them
    assert len(set(b.n_audio)) > 1


def test_silence_rows_are_encoded_once_per_length(tiny, dataset_path):
    exs, wavs = _clips(tiny, dataset_path)
    emb = AudioEmbedder(tiny.lm._module, tiny.arch, tiny.name)
    same = [wavs[0], wavs[0].copy() * 0.5]  # two audio rows of one length
    b = encode(tiny.processor, exs[:2], same, [np.zeros_like(w) for w in same], tiny.prompt, 0)
    emb(dict(b.model_inputs), b.row_keys)
    assert emb.encoded_rows == 3  # 2 audio rows + 1 silence row for the shared length
    emb(dict(b.model_inputs), b.row_keys)
    assert emb.encoded_rows == 5  # the silence row now comes from the memo
    assert len(emb.memo) == 1


def test_capture_is_the_same_on_both_paths(dataset_path, tmp_path):
    slow = loaded.load("tiny", device="cpu", audio_encoder="full-window")
    fast = loaded.load("tiny", device="cpu")
    assert fast.uses_fast_audio and not slow.uses_fast_audio
    exs = mmau.load(dataset_path).examples[:6]
    a = run_capture(slow, exs, tmp_path / "slow", batch_size=3).load([e.id for e in exs])
    b = run_capture(fast, exs, tmp_path / "fast", batch_size=3).load([e.id for e in exs])
    for k in a.t:
        torch.testing.assert_close(a[k], b[k], atol=2e-5, rtol=1e-4)


def test_option_selects_the_models_own_forward(monkeypatch):
    """--audio-encoder / the recipe's audio_encoder choose the path; the environment no longer does."""
    from steer_audio.errors import SteerAudioError
    from steer_audio.recipes import Recipe

    assert not loaded.load("tiny", device="cpu", audio_encoder="full-window").uses_fast_audio
    monkeypatch.setenv("STEER_AUDIO_AUDIO_ENCODER", "full-window")
    assert loaded.load("tiny", device="cpu").uses_fast_audio
    with pytest.raises(SteerAudioError, match="clip-length or full-window"):
        loaded.load("tiny", device="cpu", audio_encoder="sometimes")
    r = Recipe(name="x", reproduces="y", audio_encoder="full-window")
    assert r.cli_kwargs(Path("out"))["audio_encoder"] == "full-window"


def test_full_window_computes_features_where_a_remote_client_does(dataset_path, tmp_path, monkeypatch):
    """The model's own forward (`full-window`, the local half of a local-vs-remote comparison) gets features
    computed on the host, as a remote client sends them (on the H200 a CUDA STFT differed from the host's and the
    7B comparison failed on the audio rows only); the clip-length path keeps them on the model's device."""
    import steer_audio.capture.run as run_mod
    from steer_audio.data import mmau

    seen: list[str | None] = []
    orig = run_mod.prepare_batch

    def spy(processor, spec, chunk):
        seen.append(spec.feature_device)
        return orig(processor, spec, chunk)

    monkeypatch.setattr(run_mod, "prepare_batch", spy)
    exs = mmau.load(dataset_path).examples[:2]
    for enc, want in (("full-window", None), ("clip-length", "cpu")):
        m = loaded.load("tiny", device="cpu", audio_encoder=enc)
        assert m.feature_device == want
        seen.clear()
        run_mod.run_capture(m, exs, tmp_path / enc, batch_size=2)
        assert seen == [want]
    assert loaded.load("tiny", device="cpu", remote="local").feature_device is None


def test_take_rows_is_the_list_index_and_a_view_for_a_run():
    x = torch.arange(24.0).reshape(6, 4)
    for rows in ([0, 1, 2], [3], [1, 3, 4], [5, 0]):
        assert torch.equal(take_rows(x, rows), x[rows]), rows
    run = take_rows(x, [2, 3, 4])
    assert run.data_ptr() == x[2].data_ptr()  # a view: nothing copied, nothing moved to a device


def test_clip_samples_cover_every_frame_the_encoder_reads(tiny, dataset_path):
    """The features of a batch padded to `clip_samples` equal the whole window's on every frame the clip-length
    encoder reads (checked here against the whole-window features, frame by frame), and a full-window clip keeps
    the whole window."""
    from steer_audio.models.audio_embed import BUCKET, clip_samples, trimmed_frames

    fe = tiny.processor.feature_extractor
    _, wavs = _clips(tiny, dataset_path)
    short = wavs[:3]
    longest = max(len(w) for w in short)
    p = clip_samples(fe, longest)
    whole = fe(
        short, sampling_rate=16000, return_tensors="pt", return_attention_mask=True, padding="max_length"
    )
    clip = fe(
        short,
        sampling_rate=16000,
        return_tensors="pt",
        return_attention_mask=True,
        padding="max_length",
        max_length=p,
    )
    n_mel = whole["attention_mask"].sum(-1)
    assert torch.equal(clip["attention_mask"].sum(-1), n_mel)
    read = trimmed_frames((int(n_mel.max()) - 1) // 2 + 1, whole["input_features"].shape[-1], BUCKET)
    assert clip["input_features"].shape[-1] >= read
    torch.testing.assert_close(
        clip["input_features"][..., :read], whole["input_features"][..., :read], rtol=0, atol=0
    )
    assert clip_samples(fe, len(wavs[3])) == fe.n_samples
