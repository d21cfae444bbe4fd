"""What every family module shares: the `Family` row, the tiny byte-level tokenizer, the tiny feature
extractor and decoder config, and the attention-implementation switch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tokenizers import pre_tokenizers
from transformers import Qwen2Tokenizer, WhisperFeatureExtractor

from ..tiny import TINY_DEFAULT

#: the tiny spec (also the remote model key's payload); `window_s` is the audio window of the processor
TINY_FAMILY_DEFAULT: dict[str, Any] = dict(TINY_DEFAULT)


@dataclass(frozen=True)
class Family:
    """One audio-language model family: its transformers classes, its tiny random configuration and
    processor (built in code, no hub), and how a real checkpoint's processor is loaded."""

    name: str
    model_class: Any
    config_class: Any
    #: `model_type` values of a checkpoint folder's config.json that belong to this family
    model_types: tuple[str, ...]
    #: the tiny model's tokenizer
    tokenizer: Callable[[], Qwen2Tokenizer]
    #: (tiny spec, tiny tokenizer) -> the tiny config
    tiny_config: Callable[[dict[str, Any], Qwen2Tokenizer], Any]
    #: (tiny spec, feature extractor, tokenizer) -> the tiny processor
    tiny_processor: Callable[[dict[str, Any], WhisperFeatureExtractor, Qwen2Tokenizer], Any]
    #: (source, from_pretrained kwargs) -> a real checkpoint's processor
    processor: Callable[[str, dict[str, Any]], Any]


def tiny_spec(spec: dict[str, Any] | None) -> dict[str, Any]:
    return {**TINY_FAMILY_DEFAULT, **(spec or {})}


def byte_tokenizer(
    eos: str, pad: str, specials: Sequence[str], extra: dict[str, str] | None = None
) -> Qwen2Tokenizer:
    """Byte-level BPE with no merges (ids 0..255 are bytes), special tokens from 256 (as `tiny.py`)."""
    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    kw: dict[str, Any] = {"extra_special_tokens": extra} if extra else {}
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], errors="replace", unk_token=None, **kw)  # type: ignore[arg-type]
    tok.add_special_tokens({"eos_token": eos, "pad_token": pad})
    tok.add_special_tokens({"additional_special_tokens": [s for s in specials if s not in (eos, pad)]})
    return tok


def token_id(tok: Any, token: str) -> int:
    return int(tok.convert_tokens_to_ids(token))


def feature_extractor(s: dict[str, Any]) -> WhisperFeatureExtractor:
    return WhisperFeatureExtractor(
        feature_size=s["n_mels"], sampling_rate=16000, hop_length=160, chunk_length=s["window_s"], n_fft=400
    )


def mel_frames(s: dict[str, Any]) -> int:
    """Mel frames per window (hop 10 ms); the family encoders halve them once."""
    return int(s["window_s"]) * 100


#: the tiny audio encoders' shapes (Whisper-style encoders)
TINY_ENCODER = dict(d_model=64, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128)


def text_config(s: dict[str, Any], tok: Any, model_type: str, **more: Any) -> dict[str, Any]:
    return dict(
        model_type=model_type,
        vocab_size=512,
        hidden_size=s["hidden"],
        intermediate_size=2 * s["hidden"],
        num_hidden_layers=s["n_layers"],
        num_attention_heads=s["heads"],
        num_key_value_heads=s["kv_heads"],
        head_dim=s["hidden"] // s["heads"],
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        **more,
    )


def set_attn(cfg: Any, attn: str) -> Any:
    """Set the attention implementation on a config and its sub-configs; returns the config."""
    cfg._attn_implementation = attn
    for sub in ("text_config", "audio_config", "vision_config"):
        if getattr(cfg, sub, None) is not None:
            getattr(cfg, sub)._attn_implementation = attn
    return cfg
