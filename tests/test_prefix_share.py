"""Shared prompt prefixes (steer_audio/capture/prefix.py): rows that agree through their last audio token run
that prefix once, and every captured quantity still equals the independent plain-PyTorch reference (one
example at a time, full forward, eager attention probabilities) and the whole-row trace, to float rounding."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from reference import plain_reference

from steer_audio.capture import prefix
from steer_audio.capture.inputs import encode
from steer_audio.capture.run import run_capture
from steer_audio.data import mmau
from steer_audio.data.audio import load_audio


def _twins(dataset_path):
    """Two clips, each under two prompts (as listen-bench's twins: one clip, a neutral and a hinted
    question), so both the audio rows and the silence negatives of one length share prefixes."""
    exs = mmau.load(dataset_path).examples[:2]
    out = []
    for ex in exs:
        out.append(ex)
        out.append(
            replace(ex, id=ex.id + "-hinted", question="A note says the answer is obvious. " + ex.question)
        )
    return out


@pytest.fixture
def spy(monkeypatch):
    """Records (rows, distinct prefixes) of every shared batch."""
    seen: list[tuple[int, int]] = []
    orig = prefix.share

    def share(*a, **k):
        s = orig(*a, **k)
        if s is not None:
            seen.append((s.n_rows, s.n_prefixes))
        return s

    monkeypatch.setattr(prefix, "share", share)
    return seen


def test_shared_capture_equals_the_plain_reference(tiny_eager, dataset_path, tmp_path, spy):
    exs = _twins(dataset_path)
    data = run_capture(tiny_eager, exs, tmp_path / "cap", batch_size=4).load([e.id for e in exs])
    # 8 rows: 2 clips x 2 prompts, and their silence negatives; the two clips differ in length
    assert spy and all(p < r for r, p in spy), spy
    wavs = [load_audio(e.audio_path) for e in exs]
    refs = plain_reference(tiny_eager, exs, wavs)
    refs_sil = plain_reference(tiny_eager, exs, [np.zeros_like(w) for w in wavs])
    for i, ref in enumerate(refs):
        o = data.n_options[i]
        torch.testing.assert_close(data["resid_a"][i], ref["resid"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(data["mass_a"][i], ref["mass"], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(data["logits_a"][i, :o], ref["logits"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(data["dz"][i], ref["z"] - refs_sil[i]["z"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(data["resid_n"][i], refs_sil[i]["resid"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(data["mass_n"][i], refs_sil[i]["mass"], atol=1e-6, rtol=1e-5)


def test_shared_equals_whole_rows(tiny, dataset_path, tmp_path, spy, monkeypatch):
    exs = _twins(dataset_path)
    ids = [e.id for e in exs]
    a = run_capture(tiny, exs, tmp_path / "shared", batch_size=4).load(ids)
    assert spy
    monkeypatch.setattr(prefix, "applies", lambda m: False)
    n = len(spy)
    b = run_capture(tiny, exs, tmp_path / "whole", batch_size=4).load(ids)
    assert len(spy) == n  # the second capture traced whole rows
    for k in a.t:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-5)


def test_groups_need_equal_tokens_and_equal_audio(tiny, dataset_path):
    exs = _twins(dataset_path)[:2]  # one clip under two prompts
    wav = load_audio(exs[0].audio_path)
    other = (0.05 * np.random.default_rng(0).standard_normal(wav.shape)).astype(np.float32)  # same length
    b = encode(
        tiny.processor, exs, [wav, other], [np.zeros_like(wav)] * 2, tiny.prompt, tiny.geom.audio_token_id
    )
    with torch.no_grad():
        inputs = tiny.model_inputs(b.model_inputs, b.row_keys)
    gid, reps = prefix.prefix_groups(inputs, b.audio_mask)
    # rows: clip/prompt 1, other clip/prompt 2, silence/prompt 1, silence/prompt 2
    assert gid == [0, 1, 2, 2] and reps == [0, 1, 2]
    # the same clip under both prompts: one prefix
    b = encode(tiny.processor, exs, [wav, wav], None, tiny.prompt, tiny.geom.audio_token_id)
    with torch.no_grad():
        inputs = tiny.model_inputs(b.model_inputs, b.row_keys)
    assert prefix.prefix_groups(inputs, b.audio_mask) == ([0, 0], [0])
    # nothing shared: traced whole
    b = encode(tiny.processor, exs[:1], [wav], None, tiny.prompt, tiny.geom.audio_token_id)
    with torch.no_grad():
        inputs = tiny.model_inputs(b.model_inputs, b.row_keys)
    assert prefix.prefix_groups(inputs, b.audio_mask) is None


def test_only_local_float32_and_windows_that_cover_the_rows(tiny, dataset_path, monkeypatch):
    assert prefix.applies(tiny)
    exs = _twins(dataset_path)[:2]
    wav = load_audio(exs[0].audio_path)
    b = encode(tiny.processor, exs, [wav, wav], None, tiny.prompt, tiny.geom.audio_token_id)
    with torch.no_grad():
        inputs = tiny.model_inputs(b.model_inputs, b.row_keys)
        assert prefix.share(tiny, inputs, b.audio_mask) is not None
        monkeypatch.setattr(tiny, "geom", replace(tiny.geom, windows=(4,) * tiny.geom.n_layers))
        assert prefix.share(tiny, inputs, b.audio_mask) is None
    monkeypatch.setattr(tiny, "dtype", torch.bfloat16)
    assert not prefix.applies(tiny)
