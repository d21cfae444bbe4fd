"""Audio Flamingo 3 (`AudioFlamingo3ForConditionalGeneration`, nvidia/audio-flamingo-3-hf): Qwen2 decoder.

The processor is transformers' `AudioFlamingo3Processor` with its audio windows always padded to full
length (`AF3AudioProcessor`); it returns the feature mask as `input_features_mask`."""

from __future__ import annotations

from typing import Any

from transformers import (
    AudioFlamingo3Config,
    AudioFlamingo3ForConditionalGeneration,
    AudioFlamingo3Processor,
    Qwen2Tokenizer,
)

from .common import Family, byte_tokenizer, mel_frames, text_config, token_id

#: the ChatML layout AF3 uses (`<|im_start|>user\n<sound>...`); a real checkpoint brings its own template
AF3_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}<sound>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tokenizer() -> Qwen2Tokenizer:
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<sound>"]
    return byte_tokenizer("<|endoftext|>", "<|endoftext|>", specials)


def tiny_config(s: dict[str, Any], tok: Qwen2Tokenizer) -> AudioFlamingo3Config:
    return AudioFlamingo3Config(
        audio_config=dict(
            model_type="audioflamingo3_encoder",
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            num_mel_bins=s["n_mels"],
            max_source_positions=mel_frames(s) // 2,
        ),
        text_config=text_config(s, tok, "qwen2"),
        audio_token_id=token_id(tok, "<sound>"),
    )


class AF3AudioProcessor(AudioFlamingo3Processor):
    """Audio Flamingo 3's processor with its audio windows always padded to the full window.

    `encode()` calls processors with `padding=True`, which `AudioFlamingo3Processor` also applies to the
    feature extractor (pad to the longest chunk); AF3's encoder adds a fixed table of `max_source_positions`
    position embeddings and needs whole windows (3000 mel frames for the real model). Qwen2.5-Omni's
    processor forces the same (`padding="max_length"` in its `_process_audio`)."""

    def _process_audio(self, audio: Any, **kwargs: Any) -> Any:
        kwargs["padding"] = "max_length"
        return super()._process_audio(audio, **kwargs)


def tiny_processor(s: dict[str, Any], fe: Any, tok: Qwen2Tokenizer) -> AF3AudioProcessor:
    return AF3AudioProcessor(
        feature_extractor=fe, tokenizer=tok, chat_template=AF3_TEMPLATE, max_audio_len=s["window_s"]
    )


def checkpoint_processor(src: str, kw: dict[str, Any]) -> AF3AudioProcessor:
    return AF3AudioProcessor.from_pretrained(src, **kw)


FAMILY = Family(
    name="af3",
    model_class=AudioFlamingo3ForConditionalGeneration,
    config_class=AudioFlamingo3Config,
    model_types=("audioflamingo3",),
    tokenizer=tokenizer,
    tiny_config=tiny_config,
    tiny_processor=tiny_processor,
    processor=checkpoint_processor,
)
