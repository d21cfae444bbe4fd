"""Every captured quantity equals an independent plain-PyTorch reference (HF eager attention probabilities,
forward hooks on decoder layers and o_proj inputs); batched with padding equals one at a time; resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from reference import plain_reference

from steer_audio.capture.cache import CaptureCache
from steer_audio.capture.run import run_capture
from steer_audio.data import mmau
from steer_audio.data.audio import load_audio
from steer_audio.errors import SteerAudioError


def test_capture_matches_plain_pytorchplain_reference(tiny_eager, dataset_path, tmp_path):
    ds = mmau.load(dataset_path)
    exs = ds.examples[:5]
    cache = run_capture(tiny_eager, exs, tmp_path / "cap", batch_size=3)
    data = cache.load([e.id for e in exs])
    wavs = [load_audio(e.audio_path) for e in exs]
    refs = plain_reference(tiny_eager, exs, wavs)
    for i, ref in enumerate(refs):
        o = data.n_options[i]
        torch.testing.assert_close(data["resid_a"][i], ref["resid"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(data["mass_a"][i], ref["mass"], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(data["logits_a"][i, :o], ref["logits"], atol=1e-5, rtol=1e-5)
        assert torch.isinf(data["logits_a"][i, o:]).all()
    # z of the silence pass: dz = z(x) - z(x0), so check against the silence reference too
    refs_sil = plain_reference(tiny_eager, exs, [np.zeros_like(w) for w in wavs])
    for i in range(len(exs)):
        torch.testing.assert_close(data["dz"][i], refs[i]["z"] - refs_sil[i]["z"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(data["resid_n"][i], refs_sil[i]["resid"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(data["mass_n"][i], refs_sil[i]["mass"], atol=1e-6, rtol=1e-5)


def test_audio_mass_is_a_fraction(tiny, dataset_path, tmp_path):
    ds = mmau.load(dataset_path)
    data = run_capture(tiny, ds.examples[:4], tmp_path / "c", batch_size=4).load()
    m = data["mass_a"]
    assert (m > 0).all() and (m < 1).all()


def test_batched_equals_unbatched(tiny, dataset_path, tmp_path):
    ds = mmau.load(dataset_path)
    exs = ds.examples[:6]
    a = run_capture(tiny, exs, tmp_path / "b1", batch_size=1).load([e.id for e in exs])
    b = run_capture(tiny, exs, tmp_path / "b6", batch_size=6).load([e.id for e in exs])
    for k in a.t:
        torch.testing.assert_close(a[k], b[k], atol=2e-5, rtol=1e-4)


def test_interrupted_capture_resumes_to_the_same_cache(tiny, dataset_path, tmp_path, monkeypatch):
    ds = mmau.load(dataset_path)
    exs = ds.examples[:6]
    full = run_capture(tiny, exs, tmp_path / "full", batch_size=2).load([e.id for e in exs])

    import steer_audio.capture.run as run_mod

    calls = {"n": 0}
    real = run_mod.capture_trace

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(run_mod, "capture_trace", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_capture(tiny, exs, tmp_path / "part", batch_size=2)
    assert len(CaptureCache(tmp_path / "part").index["examples"]) == 2
    monkeypatch.setattr(run_mod, "capture_trace", real)
    resumed = run_capture(tiny, exs, tmp_path / "part", batch_size=2).load([e.id for e in exs])
    for k in full.t:
        torch.testing.assert_close(full[k], resumed[k], atol=0, rtol=0)


def test_missing_audio_is_recorded_or_strict(tiny, dataset_path, tmp_path):
    ds = mmau.load(dataset_path)
    exs = ds.examples[:3]
    exs[1].audio_path = tmp_path / "nope.wav"
    cache = run_capture(tiny, exs, tmp_path / "m", batch_size=2)
    assert list(cache.index["missing"]) == [exs[1].id]
    assert set(cache.index["examples"]) == {exs[0].id, exs[2].id}
    with pytest.raises(SteerAudioError, match="not found"):
        run_capture(tiny, exs, tmp_path / "s", batch_size=2, strict=True)


def test_cache_refuses_other_settings(tiny, dataset_path, tmp_path):
    ds = mmau.load(dataset_path)
    run_capture(tiny, ds.examples[:2], tmp_path / "x", batch_size=2)
    with pytest.raises(SteerAudioError, match="different settings"):
        run_capture(tiny, ds.examples[:2], tmp_path / "x", batch_size=2, negative_kind="noise")


def test_parallel_capture_merges_to_the_single_process_cache(dataset_path, tmp_path):
    """Two worker processes (CPU), whole batches dealt round-robin: merged cache == single-process cache."""
    from steer_audio.capture.parallel import run_capture_parallel
    from steer_audio.capture.run import cache_key
    from steer_audio.models import loaded

    m = loaded.load("tiny", device="cpu")
    ds = mmau.load(dataset_path)
    exs = ds.examples[:7]
    single = run_capture(m, exs, tmp_path / "one", batch_size=2, data_sha=ds.sha256).load([e.id for e in exs])
    from steer_audio.capture.run import all_candidate_ids

    key = cache_key(m, ds.sha256, "silence", 0)
    ro = all_candidate_ids(m, exs)
    cache = run_capture_parallel(
        {"name": "tiny"}, ["cpu", "cpu"], exs, tmp_path / "two", key, ro, batch_size=2, data_sha=ds.sha256
    )
    merged = cache.load([e.id for e in exs])
    for k in single.t:
        torch.testing.assert_close(merged[k], single[k], atol=0, rtol=0)
    assert not list((tmp_path / "two").glob("worker-*"))
    assert (
        CaptureCache(tmp_path / "two").readout().token_ids
        == CaptureCache(tmp_path / "one").readout().token_ids
    )


def test_drop_negative_is_the_prompt_without_audio(tiny, dataset_path, tmp_path):
    """`--negative drop`: the negative rows equal a plain forward of the same prompt with no audio at all."""
    from steer_audio.data.prompts import render

    ds = mmau.load(dataset_path)
    exs = ds.examples[:3]
    data = run_capture(tiny, exs, tmp_path / "d", batch_size=3, negative_kind="drop").load(
        [e.id for e in exs]
    )
    tok = tiny.processor.tokenizer
    for i, ex in enumerate(exs):
        text = render(tiny.processor, ex, tiny.prompt, audio=False)
        assert "<|AUDIO|>" not in text
        ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = tiny.lm._module(input_ids=ids, output_hidden_states=False)
        o = data.n_options[i]
        cand = data["cand"][i, :o]
        torch.testing.assert_close(data["logits_n"][i, :o], out.logits[0, -1, cand], atol=1e-5, rtol=1e-5)
        assert torch.all(data["mass_n"][i] == 0)


def test_capture_order_pads_fewer_tokens_than_id_order(tiny):
    """MMAU test-mini's real questions under equal 10 s clips: batches in capture order carry fewer padded
    tokens (counted by the model's own tokenizer) than batches in id order; whole-second clip buckets come first."""
    from dataclasses import replace
    from importlib import resources

    from steer_audio.capture.inputs import encode
    from steer_audio.capture.run import capture_order

    real = mmau.load(Path(str(resources.files("steer_audio") / "assets" / "mmau" / "mmau-test-mini.json")))
    wav = np.zeros(16000 * 2, np.float32)
    exs = [
        replace(q, id=f"q{i:03d}", audio_path=None, audio_array=wav) for i, q in enumerate(real.examples[:64])
    ]
    ps, aid = tiny.prompt, tiny.geom.audio_token_id
    n_tok = dict(
        zip(
            [e.id for e in exs],
            encode(tiny.processor, exs, [wav] * len(exs), None, ps, aid).n_tokens,
            strict=True,
        )
    )

    def padded(order: list) -> int:
        return sum(
            max(n_tok[e.id] for e in order[i : i + 8]) * 8 - sum(n_tok[e.id] for e in order[i : i + 8])
            for i in range(0, len(order), 8)
        )

    by_id = sorted(exs, key=lambda e: e.id)
    assert padded(capture_order(exs)) < 0.5 * padded(by_id)
    # the clip's whole-second bucket decides before the text: a 1 s clip with the longest text comes first,
    # a 2.5 s clip with the shortest text last
    first = replace(
        max(exs, key=lambda e: len(e.question)), id="zz1", audio_array=np.zeros(16000, np.float32)
    )
    last = replace(min(exs, key=lambda e: len(e.question)), id="aa3", audio_array=np.zeros(40000, np.float32))
    order = [e.id for e in capture_order([last, *exs, first])]
    assert order[0] == "zz1" and order[-1] == "aa3"
