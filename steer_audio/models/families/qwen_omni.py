"""Qwen2.5-Omni, the thinker only (`Qwen2_5OmniThinkerForConditionalGeneration`): audio + text prompts.

The processor is transformers' `Qwen2_5OmniProcessor` (`processor(text=, audio=)` expands the audio
placeholder) with one override: `OmniAudioProcessor` leaves the image and video slots empty (they need
torchvision)."""

from __future__ import annotations

import json
from typing import Any

from transformers import (
    AutoFeatureExtractor,
    AutoTokenizer,
    Qwen2_5OmniProcessor,
    Qwen2_5OmniThinkerConfig,
    Qwen2_5OmniThinkerForConditionalGeneration,
    Qwen2Tokenizer,
)

from ...errors import SteerAudioError
from .common import TINY_ENCODER, Family, byte_tokenizer, mel_frames, text_config, token_id

_EXTRA = {
    "audio_token": "<|AUDIO|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
    "image_token": "<|IMAGE|>",
    "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
}

#: modelled on the Qwen2.5-Omni chat template (audio and text parts only); a real checkpoint brings its own
OMNI_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tokenizer() -> Qwen2Tokenizer:
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *_EXTRA.values()]
    return byte_tokenizer("<|endoftext|>", "<|endoftext|>", specials, dict(_EXTRA))


def tiny_config(s: dict[str, Any], tok: Qwen2Tokenizer) -> Qwen2_5OmniThinkerConfig:
    # mrope_section sums to head_dim / 2 (here 4); for audio-only prompts all three sections hold the
    # same 1-D positions, so it does not change the result
    hd = s["hidden"] // s["heads"]
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [hd // 4, hd // 8, hd // 8]}
    frames = mel_frames(s)
    return Qwen2_5OmniThinkerConfig(
        audio_config=dict(
            **TINY_ENCODER,
            num_mel_bins=s["n_mels"],
            max_source_positions=frames // 2,
            n_window=50,
            output_dim=s["hidden"],
        ),
        vision_config=dict(
            depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=s["hidden"]
        ),
        text_config=text_config(s, tok, "qwen2_5_omni_text", rope_parameters=rope),
        audio_token_index=token_id(tok, "<|AUDIO|>"),
        image_token_index=token_id(tok, "<|IMAGE|>"),
        video_token_index=token_id(tok, "<|VIDEO|>"),
        audio_start_token_id=token_id(tok, "<|audio_bos|>"),
        # vision_start_token_id is no declared field of the thinker config, but get_rope_index reads it
        vision_start_token_id=token_id(tok, "<|vision_bos|>"),  # type: ignore[call-arg]
    )


class OmniAudioProcessor(Qwen2_5OmniProcessor):
    """Qwen2.5-Omni's processor for audio + text prompts, without image and video processors.

    transformers' Qwen2-VL video processor (and the class check of the processor's video slot) needs
    torchvision, which is not a dependency here; prompts here hold no images or videos, so those slots stay
    empty. Audio and text go through the unchanged `Qwen2_5OmniProcessor` code (placeholder expansion,
    feature extraction)."""

    def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
        if argument_name in ("image_processor", "video_processor") and argument is None:
            return None
        return super().check_argument_for_proper_class(argument_name, argument)


def audio_processor(fe: Any, tok: Any, chat_template: str | None) -> OmniAudioProcessor:
    return OmniAudioProcessor(
        image_processor=None,
        video_processor=None,
        feature_extractor=fe,
        tokenizer=tok,
        chat_template=chat_template,
    )


def tiny_processor(s: dict[str, Any], fe: Any, tok: Qwen2Tokenizer) -> OmniAudioProcessor:
    return audio_processor(fe, tok, OMNI_TEMPLATE)


def checkpoint_processor(src: str, kw: dict[str, Any]) -> OmniAudioProcessor:
    """A checkpoint's audio + text processor, with the checkpoint's processor chat template."""
    fe = AutoFeatureExtractor.from_pretrained(src, **kw)
    tok = AutoTokenizer.from_pretrained(src, **kw)
    template = checkpoint_chat_template(src, kw) or tok.chat_template
    if not template:
        raise SteerAudioError(f"the Qwen2.5-Omni checkpoint {src!r} carries no chat template")
    return audio_processor(fe, tok, template)


def checkpoint_chat_template(src: str, kw: dict[str, Any]) -> str | None:
    """The processor chat template of a checkpoint: `chat_template.jinja`, else the legacy `chat_template.json`."""
    from transformers.utils.hub import cached_file

    for fname in ("chat_template.jinja", "chat_template.json"):
        path = cached_file(src, fname, _raise_exceptions_for_missing_entries=False, **kw)
        if path:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            return text if fname.endswith(".jinja") else str(json.loads(text)["chat_template"])
    return None


FAMILY = Family(
    name="qwen2.5-omni",
    model_class=Qwen2_5OmniThinkerForConditionalGeneration,
    config_class=Qwen2_5OmniThinkerConfig,  # for a full Omni checkpoint this reads the thinker part
    model_types=("qwen2_5_omni", "qwen2_5_omni_thinker"),
    tokenizer=tokenizer,
    tiny_config=tiny_config,
    tiny_processor=tiny_processor,
    processor=checkpoint_processor,
)
