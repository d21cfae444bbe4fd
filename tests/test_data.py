"""MMAU loading (both revisions, quirks), splits, negatives, prompts: one clear error per bad input."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from steer_audio.data import mmau
from steer_audio.data.audio import block_shuffle, negative
from steer_audio.data.prompts import candidate_ids, prompt_spec, user_text
from steer_audio.errors import SteerAudioError

ASSETS = Path(str(resources.files("steer_audio") / "assets" / "mmau"))


@pytest.mark.parametrize("name", ["mmau-test-mini.json", "mmau-test-mini-v1.json"])
def test_both_revisions_load(name):
    ds = mmau.load(ASSETS / name, Path("/nonexistent"))
    assert len(ds.examples) == 1000
    counts = {k: sum(len(e.choices) == k for e in ds.examples) for k in (2, 4, 5, 8)}
    assert sum(counts.values()) == 1000 and counts[2] > 0  # v1: 990 x 4, 10 x 2; current: also 5 and 8
    assert {e.domain for e in ds.examples} == {"sound", "music", "speech"}
    assert all(isinstance(e.extra.get("category"), str) for e in ds.examples)
    assert all(c == c.strip() for e in ds.examples for c in e.choices)
    assert ds.examples[0].audio_path == Path(
        "/nonexistent/test-mini-audios/3fe64f3d-282c-4bc8-a753-68f8f6c35652.wav"
    )


def test_first_option_bias_is_as_documented():
    ds = mmau.load(ASSETS / "mmau-test-mini.json")
    assert np.mean([0 in e.correct for e in ds.examples]) == pytest.approx(0.395, abs=0.002)


def _write(tmp_path, items):
    p = tmp_path / "d.json"
    p.write_text(json.dumps(items))
    return p


def test_bad_inputs_give_one_clear_error(tmp_path):
    (tmp_path / "bad.json").write_text("[{")
    with pytest.raises(SteerAudioError, match="malformed JSON"):
        mmau.load(tmp_path / "bad.json")
    p = _write(tmp_path, [{"id": "a", "question": "q", "choices": ["x", "y"], "answer": "z"}])
    with pytest.raises(SteerAudioError, match="not among its choices"):
        mmau.load(p)
    with pytest.raises(SteerAudioError, match="not found"):
        mmau.load(tmp_path / "missing.json")


def test_duplicate_answer_choices_are_all_correct(tmp_path):
    p = _write(tmp_path, [{"id": "a", "question": "q", "choices": ["x ", "y", "x"], "answer": " x"}])
    e = mmau.load(p).examples[0]
    assert e.correct == {0, 2} and e.choices == ("x", "y", "x")


def test_carve_is_seeded_stratified_and_disjoint():
    ds = mmau.load(ASSETS / "mmau-test-mini.json")
    c1, r1 = mmau.carve(ds.examples, 0.2, 7)
    c2, _ = mmau.carve(ds.examples, 0.2, 7)
    assert [e.id for e in c1] == [e.id for e in c2]
    assert abs(len(c1) - 200) <= 2 and not {e.id for e in c1} & {e.id for e in r1}
    for d in ("sound", "music", "speech"):
        assert abs(sum(e.domain == d for e in c1) - 67) <= 1
    with pytest.raises(SteerAudioError, match="overlap"):
        mmau.check_disjoint(c1, c1[:3] + r1)


def test_negatives_keep_length_and_loudness():
    rng = np.random.default_rng(0)
    wav = (0.3 * np.sin(np.arange(16000) / 5) + 0.01 * rng.standard_normal(16000)).astype(np.float32)
    for kind in ("silence", "noise", "shuffle"):
        neg = negative(wav, kind, seed=1)
        assert neg.shape == wav.shape and neg.dtype == np.float32
    assert not negative(wav, "silence").any()
    rms = lambda x: float(np.sqrt(np.mean(x**2)))  # noqa: E731
    assert rms(negative(wav, "noise", 1)) == pytest.approx(rms(wav), rel=0.05)
    sh = block_shuffle(wav, np.random.default_rng(2))
    assert rms(sh) == pytest.approx(rms(wav), rel=0.1) and not np.allclose(sh, wav)
    with pytest.raises(SteerAudioError, match="unknown negative"):
        negative(wav, "pink")


def test_floor_negative_matches_the_background_noise_not_the_event():
    """An event (a loud tone over 1 s of a 4 s clip) in Gaussian background noise of known sigma: the
    `floor` negative is white noise at that sigma (the generator's, not estimated by the same code), far
    below the clip's overall RMS that the `noise` negative matches; digital silence gives zeros."""
    rng = np.random.default_rng(3)
    sigma, n = 0.02, 4 * 16000
    wav = sigma * rng.standard_normal(n)
    wav[16000:32000] += 0.5 * np.sin(np.arange(16000) / 3)
    wav = wav.astype(np.float32)
    rms = lambda x: float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))  # noqa: E731
    floor = negative(wav, "floor", seed=4)
    assert floor.shape == wav.shape and floor.dtype == np.float32
    assert rms(floor) == pytest.approx(sigma, rel=0.15)
    assert rms(wav) > 5 * rms(floor)
    assert abs(np.corrcoef(floor, wav)[0, 1]) < 0.05  # fresh noise, not the clip's own samples
    assert not negative(np.zeros(n, np.float32), "floor").any()


def test_prompt_and_label_tokens(tiny):
    ds = mmau.load(ASSETS / "mmau-test-mini.json")
    e = next(x for x in ds.examples if len(x.choices) == 5)
    ps = prompt_spec("letters")
    assert "(E) " + e.choices[4] in user_text(e, ps)
    ids = candidate_ids(tiny.processor.tokenizer, e, ps)
    assert len(ids) == 5 and len(set(ids)) == 5


def test_rotate_moves_options_and_answer_together():
    ds = mmau.load(ASSETS / "mmau-test-mini.json")
    e = ds.examples[0]
    r = mmau.rotate(e, 1)
    assert r.choices == (e.choices[-1], *e.choices[:-1])
    assert {r.choices[i] for i in r.correct} == {e.answer}
    assert r.id == f"{e.id}#rot1" and r.audio_path == e.audio_path


def test_local_datasets_copy_loads_with_audio(dataset_path, tmp_path):
    """A saved / parquet `datasets` copy of MMAU (audio column) gives the same items and waveforms."""
    import datasets
    import soundfile as sf

    items = json.loads(dataset_path.read_text())
    rows = {k: [it[k] for it in items] for k in ("id", "question", "choices", "answer", "task")}
    rows["audio"] = [str(dataset_path.parent / it["audio_id"]) for it in items]
    ds = datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio())
    ds.save_to_disk(str(tmp_path / "saved"))
    ds.to_parquet(str(tmp_path / "mmau.parquet"))
    ref = mmau.load(dataset_path)
    for src in (tmp_path / "saved", tmp_path / "mmau.parquet"):
        got = mmau.load(src)
        assert [e.id for e in got.examples] == [e.id for e in ref.examples] and got.sha256
        for g, r in zip(got.examples, ref.examples, strict=True):
            assert g.correct == r.correct and g.choices == r.choices
            wav, sr = sf.read(r.audio_path, dtype="float32")
            np.testing.assert_allclose(g.audio_array, wav, atol=1e-6)


def test_first_token_prompt_is_the_one_mini_was_trained_with():
    from steer_audio.bench.listen_bench import build_prompt

    item = {"question": "What is heard?", "choices": ["hiss", "beep", "siren", "whistle"]}
    ex = mmau._example({**item, "id": "x", "answer": "beep"}, 0, None)
    assert user_text(ex, prompt_spec("first-token")) == build_prompt(item)
