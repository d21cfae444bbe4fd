"""The pretrained parts of `mini`, checked independently of our own pipeline code:
the converted Whisper-base (encoder + decoder) transcribes real Debian recordings, and the assembled
Gemma-3-270M (inside Qwen2AudioForConditionalGeneration, text only) continues "1, 2, 3, 4," with " 5"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from steer_audio.bench.listen_bench import ALLISON_DIR
from steer_audio.models.mini import assemble

pytestmark = pytest.mark.mini

ALLISON_8 = ALLISON_DIR / "digits" / "8.wav"
ALLISON_BUSY = ALLISON_DIR / "all-circuits-busy-now.wav"
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav")


def _cache() -> Path:
    cache = assemble.default_cache_dir()
    if not assemble.is_set_up(cache):
        pytest.skip(f"mini cache absent at {cache}; run scripts/setup_mini.sh (steer-audio mini-setup)")
    return cache


@pytest.fixture(scope="module")
def whisper():
    from safetensors.torch import load_file
    from tokenizers import Tokenizer
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    cache = _cache()
    cfg = WhisperConfig(**json.loads((cache / assemble.WHISPER_CONFIG).read_text()))
    model = WhisperForConditionalGeneration(cfg).eval()
    sd = {k: v.float() for k, v in load_file(str(cache / assemble.WHISPER_WEIGHTS)).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert unexpected == []
    assert missing == ["proj_out.weight"]  # tied to the decoder embedding
    model.proj_out.weight = model.model.decoder.embed_tokens.weight
    return model, Tokenizer.from_file(str(cache / assemble.WHISPER_TOKENIZER))


def _transcribe(model, tok, path: Path) -> str:
    import librosa
    from transformers import WhisperFeatureExtractor

    y, _ = librosa.load(str(path), sr=16000)
    feats = WhisperFeatureExtractor(feature_size=80)(
        y, sampling_rate=16000, return_tensors="pt"
    ).input_features
    ids = [
        tok.token_to_id(t) for t in ("<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>")
    ]
    eot = tok.token_to_id("<|endoftext|>")
    with torch.no_grad():
        enc = model.model.encoder(feats).last_hidden_state
        for _ in range(40):
            nxt = int(
                model(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([ids])).logits[0, -1].argmax()
            )
            if nxt == eot:
                break
            ids.append(nxt)
    return tok.decode(ids[4:]).strip()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (ALLISON_8, "8."),
        (ALLISON_BUSY, "All circuits are busy now."),
        (LIBRIVOX, "He was not an ill-disposed young man."),
    ],
)
def test_whisper_transcribes_real_recordings(whisper, path: Path, expected: str) -> None:
    if not path.is_file():
        pytest.skip(f"{path} missing (apt-get install asterisk-core-sounds-en-wav pocketsphinx-testdata)")
    model, tok = whisper
    assert _transcribe(model, tok, path) == expected


@pytest.fixture(scope="module")
def mini_untrained():
    _cache()
    torch.set_num_threads(2)
    return assemble.build_mini()


def test_gemma_tokenizer_is_the_bpe(mini_untrained) -> None:
    _, proc = mini_untrained
    tok = proc.tokenizer
    ids = tok("The capital of France is").input_ids
    assert tok.convert_ids_to_tokens(ids) == ["<bos>", "The", "▁capital", "▁of", "▁France", "▁is"]
    assert [tok.convert_tokens_to_ids(t) for t in ("<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>")] == [
        262144,
        262145,
        262146,
    ]


def test_assembled_gemma_counts(mini_untrained) -> None:
    model, proc = mini_untrained
    ids = proc.tokenizer("1, 2, 3, 4,", return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False
        )
    text = proc.tokenizer.decode(out[0, ids.shape[1] :])
    assert text.startswith(" 5"), text


def test_module_facts(mini_untrained) -> None:
    model, _ = mini_untrained
    f = assemble.MODULE_FACTS
    layers = model.get_submodule(f["decoder_layers"])
    assert len(layers) == f["num_layers"] == 18
    attn = layers[0].self_attn
    assert attn.q_proj.out_features == f["num_heads"] * f["head_dim"] == 4 * 256
    assert attn.k_proj.out_features == f["num_kv_heads"] * f["head_dim"] == 256
    assert attn.o_proj.in_features == 1024 and attn.o_proj.out_features == f["hidden_size"] == 640
    assert model.get_submodule(f["final_norm"]) is model.model.language_model.norm
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight
    assert model.config.audio_config.max_source_positions == 50 * assemble.WINDOW_S


def test_chat_template_renders_qwen2_audio_conversation(mini_untrained) -> None:
    _, proc = mini_untrained
    conv = [
        {"role": "user", "content": [{"type": "audio", "audio_url": "x.wav"}, {"type": "text", "text": "Q?"}]}
    ]
    text = proc.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<start_of_turn>user\n<|audio_bos|><|AUDIO|><|audio_eos|>\nQ?<end_of_turn>\n<start_of_turn>model\n"
    )


def test_last_position_head_matches_full_head(mini_untrained) -> None:
    import numpy as np

    model, proc = mini_untrained
    conv = [
        {"role": "user", "content": [{"type": "audio", "audio_url": "x.wav"}, {"type": "text", "text": "Q?"}]}
    ]
    text = proc.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
    y = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    inputs = proc(text=text, audio=[y], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        ref = assemble.last_position_logits(model, **inputs)
        full_head = model.lm_head
        try:
            assemble.use_last_position_head(model)
            assert model.lm_head.weight is full_head.weight
            out = model(**inputs).logits
        finally:
            model.lm_head = full_head
    assert out.shape == (1, 1, ref.shape[-1])
    torch.testing.assert_close(out[:, -1], ref)
