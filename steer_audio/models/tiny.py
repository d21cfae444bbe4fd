"""A tiny, randomly initialised Qwen2-Audio built from a config in code: no download, no GPU.

Every number it produces is from RANDOM WEIGHTS and is labelled so by the registry (`random_weights`).
It exercises the real transformers classes (processor, chat template, <|AUDIO|> expansion, model).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from tokenizers import pre_tokenizers
from transformers import (
    Qwen2AudioConfig,
    Qwen2AudioForConditionalGeneration,
    Qwen2AudioProcessor,
    Qwen2Tokenizer,
    WhisperFeatureExtractor,
)

from .base import ModelKind, Spec, finish

if TYPE_CHECKING:
    from .registry import ModelEntry

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]

#: the default tiny spec (also the remote model key's payload)
TINY_DEFAULT: dict[str, Any] = {
    "seed": 0,
    "n_layers": 4,
    "hidden": 64,
    "heads": 8,
    "kv_heads": 2,
    "window_s": 4,
    "n_mels": 128,
    "attn": "sdpa",
}


def build_tokenizer() -> Qwen2Tokenizer:
    """Byte-level BPE with no merges: every byte is one token (ids 0..255), specials from 256."""
    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], errors="replace", unk_token=None)  # type: ignore[arg-type]
    tok.add_special_tokens({"eos_token": SPECIALS[0], "pad_token": SPECIALS[0]})
    tok.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    tok.audio_token, tok.audio_bos_token, tok.audio_eos_token = "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"
    return tok


def build_processor(spec: dict[str, Any] | None = None) -> Qwen2AudioProcessor:
    s = {**TINY_DEFAULT, **(spec or {})}
    fe = WhisperFeatureExtractor(
        feature_size=s["n_mels"], sampling_rate=16000, hop_length=160, chunk_length=s["window_s"], n_fft=400
    )
    return Qwen2AudioProcessor(feature_extractor=fe, tokenizer=build_tokenizer())


def build_config(spec: dict[str, Any] | None = None) -> Qwen2AudioConfig:
    s = {**TINY_DEFAULT, **(spec or {})}
    tok = build_tokenizer()
    cfg = Qwen2AudioConfig(
        audio_config=dict(
            model_type="qwen2_audio_encoder",
            d_model=64,
            encoder_layers=2,
            encoder_attention_heads=4,
            encoder_ffn_dim=128,
            num_mel_bins=s["n_mels"],
            max_source_positions=s["window_s"] * 50,
        ),
        text_config=dict(
            model_type="qwen2",
            vocab_size=512,
            hidden_size=s["hidden"],
            intermediate_size=2 * s["hidden"],
            num_hidden_layers=s["n_layers"],
            num_attention_heads=s["heads"],
            num_key_value_heads=s["kv_heads"],
            max_position_embeddings=2048,
            tie_word_embeddings=False,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        ),
        audio_token_index=int(tok.convert_tokens_to_ids("<|AUDIO|>")),  # type: ignore[arg-type]
    )
    cfg._attn_implementation = s["attn"]
    setattr(cfg.text_config, "_attn_implementation", s["attn"])  # noqa: B010
    return cfg


def build_model(
    spec: dict[str, Any] | None = None, dtype: torch.dtype | None = None
) -> Qwen2AudioForConditionalGeneration:
    s = {**TINY_DEFAULT, **(spec or {})}
    cpu_rng = torch.random.get_rng_state()
    try:
        torch.manual_seed(int(s["seed"]))
        model = Qwen2AudioForConditionalGeneration(build_config(s)).eval()
    finally:
        torch.random.set_rng_state(cpu_rng)
    if dtype is not None:
        model = model.to(dtype)
    return model


class TinyKind(ModelKind):
    """The tiny random Qwen2-Audio (kind "tiny"): config, module and processor built in code."""

    name = "tiny"
    random = True

    def spec_fields(self, entry: ModelEntry, revision: str | None, extra: dict[str, Any]) -> dict[str, Any]:
        return {"tiny": {**TINY_DEFAULT, **extra.get("tiny", {})}}

    def config(self, spec: Spec) -> Qwen2AudioConfig:
        return build_config(spec.get("tiny"))

    def module(self, spec: Spec, dtype: Any = None, device: Any = None, **placement: Any) -> torch.nn.Module:
        return finish(build_model(spec.get("tiny"), dtype=dtype), device)

    def processor(self, spec: Spec) -> Qwen2AudioProcessor:
        return build_processor(spec.get("tiny"))


KINDS: dict[str, ModelKind] = {"tiny": TinyKind()}
