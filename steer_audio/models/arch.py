"""The explicit per-architecture table. Nothing is guessed: every module path used by a capture or an
intervention comes from here, and an unresolved path fails loudly naming the model and the path.

Paths are relative to the top-level `*ForConditionalGeneration` module (transformers 5.x layout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..errors import SteerAudioError


@dataclass(frozen=True)
class ArchSpec:
    """Where things live in one model family, and how its readout works."""

    key: str
    #: the decoder's layer list (a ModuleList); layer l's output is the residual h^l
    decoder_layers: str
    #: final norm of the decoder; lm_head reads its output
    final_norm: str
    lm_head: str
    #: attention module, relative to one decoder layer
    attn: str
    #: attention output projection, relative to one decoder layer; its *input* holds per-head outputs z
    o_proj: str
    #: operation inside the attention forward (`.source` name) whose output is (q, k) after RoPE
    rope_op: str
    #: attribute of the top-level config that holds the decoder (LM) config
    text_config_attr: str
    #: attribute of the top-level config that holds the audio placeholder token id
    audio_token_attr: str
    #: how the final norm maps h to what lm_head reads: "rms": w * x/rms ; "rms_one_plus": (1 + w) * x/rms
    norm_kind: Literal["rms", "rms_one_plus"]
    #: attribute on the final-norm module holding epsilon
    norm_eps_attr: str
    #: the fast audio path of `audio_embed` (encoder on the clip's length, repeated inputs encoded once):
    #: "qwen2_audio" for Qwen2-Audio's Whisper encoder + linear projector; None = the model's own forward
    encoder: Literal["qwen2_audio"] | None = None
    audio_tower: str = "model.audio_tower"
    projector: str = "model.multi_modal_projector"


ARCHS: dict[str, ArchSpec] = {
    # Qwen2-Audio-7B(-Instruct), R1-AQA, and the tiny random test model (transformers 5.x)
    "qwen2_audio/qwen2": ArchSpec(
        key="qwen2_audio/qwen2",
        decoder_layers="model.language_model.layers",
        final_norm="model.language_model.norm",
        lm_head="lm_head",
        attn="self_attn",
        o_proj="self_attn.o_proj",
        rope_op="apply_rotary_pos_emb_0",
        text_config_attr="text_config",
        audio_token_attr="audio_token_id",
        norm_kind="rms",
        norm_eps_attr="variance_epsilon",
        encoder="qwen2_audio",
    ),
    # the embedded `mini` model: Qwen2-Audio class with Whisper-base encoder and Gemma-3-270M decoder
    "qwen2_audio/gemma3_text": ArchSpec(
        key="qwen2_audio/gemma3_text",
        decoder_layers="model.language_model.layers",
        final_norm="model.language_model.norm",
        lm_head="lm_head",
        attn="self_attn",
        o_proj="self_attn.o_proj",
        rope_op="apply_rotary_pos_emb_0",
        text_config_attr="text_config",
        audio_token_attr="audio_token_id",
        norm_kind="rms_one_plus",
        norm_eps_attr="eps",
        encoder="qwen2_audio",
    ),
    # Qwen2.5-Omni-7B, the thinker only (Qwen2_5OmniThinkerForConditionalGeneration; steer_audio/models/families/).
    # Its decoder uses mRoPE, applied by the plain apply_rotary_pos_emb (cos/sin already merged per section);
    # for audio-only prompts all three position sections are the same 1-D positions.
    "qwen2_5_omni_thinker/qwen2_5_omni_text": ArchSpec(
        key="qwen2_5_omni_thinker/qwen2_5_omni_text",
        decoder_layers="model.language_model.layers",
        final_norm="model.language_model.norm",
        lm_head="lm_head",
        attn="self_attn",
        o_proj="self_attn.o_proj",
        rope_op="apply_rotary_pos_emb_0",
        text_config_attr="text_config",
        audio_token_attr="audio_token_id",
        norm_kind="rms",
        norm_eps_attr="variance_epsilon",
    ),
    # Voxtral-Mini-3B-2507 (VoxtralForConditionalGeneration): Whisper-style encoder + Llama decoder
    "voxtral/llama": ArchSpec(
        key="voxtral/llama",
        decoder_layers="model.language_model.layers",
        final_norm="model.language_model.norm",
        lm_head="lm_head",
        attn="self_attn",
        o_proj="self_attn.o_proj",
        rope_op="apply_rotary_pos_emb_0",
        text_config_attr="text_config",
        audio_token_attr="audio_token_id",
        norm_kind="rms",
        norm_eps_attr="variance_epsilon",
    ),
    # Audio Flamingo 3 (AudioFlamingo3ForConditionalGeneration, nvidia/audio-flamingo-3-hf): Qwen2 decoder
    "audioflamingo3/qwen2": ArchSpec(
        key="audioflamingo3/qwen2",
        decoder_layers="model.language_model.layers",
        final_norm="model.language_model.norm",
        lm_head="lm_head",
        attn="self_attn",
        o_proj="self_attn.o_proj",
        rope_op="apply_rotary_pos_emb_0",
        text_config_attr="text_config",
        audio_token_attr="audio_token_id",
        norm_kind="rms",
        norm_eps_attr="variance_epsilon",
    ),
}


def arch_key(config: Any) -> str:
    text = getattr(config, "text_config", None)
    return f"{config.model_type}/{getattr(text, 'model_type', None)}"


def arch_for(config: Any, model_name: str) -> ArchSpec:
    key = arch_key(config)
    if key not in ARCHS:
        raise SteerAudioError(
            f"model {model_name!r} has architecture {key!r}, which is not in the architecture table "
            f"(known: {', '.join(sorted(ARCHS))}); add an ArchSpec to steer_audio/models/arch.py"
        )
    return ARCHS[key]


@dataclass(frozen=True)
class Geometry:
    """Head geometry of the decoder, read from the config (never inferred from tensor shapes)."""

    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    hidden: int
    #: per layer: the sliding window size, or None for full attention
    windows: tuple[int | None, ...]
    audio_token_id: int

    @property
    def n_total_heads(self) -> int:
        return self.n_layers * self.n_heads


def geometry(config: Any, arch: ArchSpec) -> Geometry:
    tc = getattr(config, arch.text_config_attr)
    n_heads = tc.num_attention_heads
    head_dim = getattr(tc, "head_dim", None) or tc.hidden_size // n_heads
    layer_types = getattr(tc, "layer_types", None) or ["full_attention"] * tc.num_hidden_layers
    sw = getattr(tc, "sliding_window", None)
    windows = tuple(sw if t == "sliding_attention" and sw else None for t in layer_types)
    return Geometry(
        n_layers=tc.num_hidden_layers,
        n_heads=n_heads,
        n_kv_heads=getattr(tc, "num_key_value_heads", None) or n_heads,
        head_dim=head_dim,
        hidden=tc.hidden_size,
        windows=windows,
        audio_token_id=int(getattr(config, arch.audio_token_attr)),
    )


def resolve(root: Any, path: str, model_name: str) -> Any:
    """Walk `a.b.3.c` from `root` (an nn.Module or an nnsight Envoy); fail loudly if absent."""
    obj = root
    for part in path.split("."):
        try:
            obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
        except (AttributeError, IndexError, KeyError, TypeError) as e:
            raise SteerAudioError(
                f"module path {path!r} does not resolve on model {model_name!r} (failed at {part!r}); "
                "check the architecture table in steer_audio/models/arch.py"
            ) from e
    return obj


def apply_final_norm(h: torch.Tensor, weight: torch.Tensor, eps: float, kind: str) -> torch.Tensor:
    """The final norm as the architecture defines it, computed in float32 (Qwen2RMSNorm / Gemma3RMSNorm)."""
    x = h.float()
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    if kind == "rms":
        return weight.float() * x.to(h.dtype).float()
    if kind == "rms_one_plus":
        return x * (1.0 + weight.float())
    raise SteerAudioError(f"unknown norm kind {kind!r}")
