"""More audio-language model families: Qwen2.5-Omni (thinker only), Voxtral and Audio Flamingo 3.

Each family has
  * an `ArchSpec` in `arch.ARCHS` (module paths, the `.source` op of post-RoPE (q, k), the norm kind),
  * a tiny random configuration built here in code (no hub: byte-level tokenizer + the family's special
    tokens, a chat template written here), registered as `tiny-qwen2.5-omni`, `tiny-voxtral`, `tiny-af3`
    (kind "tiny-family"; RANDOM weights, labelled so by `registry.is_random`),
  * a real entry (kind "family") that loads the checkpoint from the HF cache or a local folder.

Processors. Qwen2.5-Omni and AF3 use their transformers processor classes (`processor(text=, audio=)`
expands the audio placeholder), each with one override: `OmniAudioProcessor` leaves the image and video
slots empty (they need torchvision), `AF3AudioProcessor` always pads audio windows to full length. AF3
returns the feature mask as `input_features_mask` (not `feature_attention_mask`): `capture.inputs.encode()`
must keep that key (`MODEL_INPUT_KEYS` below).
Voxtral's transformers processor cannot take audio in `__call__` (only through `apply_chat_template`, which
needs the `mistral-common` tokenizer backend), so `VoxtralAdapter` below renders and encodes the prompt with
the same call signature `encode()` uses for every other family.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tokenizers import pre_tokenizers
from transformers import (
    AudioFlamingo3Config,
    AudioFlamingo3ForConditionalGeneration,
    AudioFlamingo3Processor,
    BatchFeature,
    Qwen2_5OmniProcessor,
    Qwen2_5OmniThinkerConfig,
    Qwen2_5OmniThinkerForConditionalGeneration,
    Qwen2Tokenizer,
    VoxtralConfig,
    VoxtralForConditionalGeneration,
    WhisperFeatureExtractor,
)

from ..errors import SteerAudioError
from .tiny import TINY_DEFAULT

#: model-input keys `encode()` must pass to the model's forward (AF3 adds `input_features_mask`)
MODEL_INPUT_KEYS = (
    "input_ids",
    "attention_mask",
    "input_features",
    "feature_attention_mask",
    "input_features_mask",
)

FAMILIES = ("qwen2.5-omni", "voxtral", "af3")

#: registry name -> family (the registry's ModelEntry has no family field)
FAMILY_OF: dict[str, str] = {
    "tiny-qwen2.5-omni": "qwen2.5-omni",
    "tiny-voxtral": "voxtral",
    "tiny-af3": "af3",
    "qwen2.5-omni": "qwen2.5-omni",
    "voxtral-mini": "voxtral",
    "af3": "af3",
}

#: the tiny spec (also the remote model key's payload); `window_s` is the audio window of the processor
TINY_FAMILY_DEFAULT: dict[str, Any] = dict(TINY_DEFAULT)

_MODEL_CLASSES: dict[str, Any] = {
    "qwen2.5-omni": Qwen2_5OmniThinkerForConditionalGeneration,
    "voxtral": VoxtralForConditionalGeneration,
    "af3": AudioFlamingo3ForConditionalGeneration,
}

_CONFIG_CLASSES: dict[str, Any] = {
    "qwen2.5-omni": Qwen2_5OmniThinkerConfig,
    "voxtral": VoxtralConfig,
    "af3": AudioFlamingo3Config,
}

# -- special tokens and chat templates of the tiny models ------------------------------------------------

_OMNI_EXTRA = {
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

#: Voxtral (mistral "tekken" instruct) control tokens, with the ids of the real checkpoint: 24 is
#: `VoxtralProcessor.audio_token_id`; 1-4 are tekken's fixed specials; 25 for [BEGIN_AUDIO] is an assumption
#: not checked against Voxtral's tekken.json. Used only when the tokenizer cannot name these tokens itself.
VOXTRAL_SPECIAL_IDS = {"<s>": 1, "</s>": 2, "[INST]": 3, "[/INST]": 4, "[AUDIO]": 24, "[BEGIN_AUDIO]": 25}
#: Voxtral's projector groups 4 encoder frames into one LM token (intermediate_size = 4 * d_model)
VOXTRAL_FRAMES_PER_TOKEN = 4


def _byte_tokenizer(
    eos: str, pad: str, specials: Sequence[str], extra: dict[str, str] | None = None
) -> Qwen2Tokenizer:
    """Byte-level BPE with no merges (ids 0..255 are bytes), special tokens from 256 (as `tiny.py`)."""
    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    kw: dict[str, Any] = {"extra_special_tokens": extra} if extra else {}
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], errors="replace", unk_token=None, **kw)  # type: ignore[arg-type]
    tok.add_special_tokens({"eos_token": eos, "pad_token": pad})
    tok.add_special_tokens({"additional_special_tokens": [s for s in specials if s not in (eos, pad)]})
    return tok


def build_tokenizer(family: str) -> Qwen2Tokenizer:
    if family == "qwen2.5-omni":
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *_OMNI_EXTRA.values()]
        return _byte_tokenizer("<|endoftext|>", "<|endoftext|>", specials, dict(_OMNI_EXTRA))
    if family == "voxtral":
        specials = ["</s>", "<pad>", "<s>", "[INST]", "[/INST]", "[AUDIO]", "[BEGIN_AUDIO]"]
        return _byte_tokenizer("</s>", "<pad>", specials)
    if family == "af3":
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<sound>"]
        return _byte_tokenizer("<|endoftext|>", "<|endoftext|>", specials)
    raise SteerAudioError(f"unknown model family {family!r}: use one of {', '.join(FAMILIES)}")


def _spec(spec: dict[str, Any] | None) -> dict[str, Any]:
    return {**TINY_FAMILY_DEFAULT, **(spec or {})}


def _feature_extractor(s: dict[str, Any]) -> WhisperFeatureExtractor:
    return WhisperFeatureExtractor(
        feature_size=s["n_mels"], sampling_rate=16000, hop_length=160, chunk_length=s["window_s"], n_fft=400
    )


def _text_config(s: dict[str, Any], tok: Any, model_type: str, **more: Any) -> dict[str, Any]:
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


def build_config(family: str, spec: dict[str, Any] | None = None) -> Any:
    """The tiny random configuration of a family (decoder shapes from `spec`, small audio encoder)."""
    s = _spec(spec)
    tok = build_tokenizer(family)

    def tid(t: str) -> int:
        return int(tok.convert_tokens_to_ids(t))  # type: ignore[arg-type]

    frames = s["window_s"] * 100  # mel frames per window (hop 10 ms); the encoders halve them once
    enc = dict(d_model=64, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128)
    if family == "qwen2.5-omni":
        # mrope_section sums to head_dim / 2 (here 4); for audio-only prompts all three sections hold the
        # same 1-D positions, so it does not change the result
        hd = s["hidden"] // s["heads"]
        rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [hd // 4, hd // 8, hd // 8]}
        # vision_start_token_id is no declared field of the thinker config, but get_rope_index reads it
        ids: dict[str, Any] = dict(
            audio_token_index=tid("<|AUDIO|>"),
            image_token_index=tid("<|IMAGE|>"),
            video_token_index=tid("<|VIDEO|>"),
            audio_start_token_id=tid("<|audio_bos|>"),
            vision_start_token_id=tid("<|vision_bos|>"),
        )
        cfg: Any = Qwen2_5OmniThinkerConfig(
            audio_config=dict(
                **enc,
                num_mel_bins=s["n_mels"],
                max_source_positions=frames // 2,
                n_window=50,
                output_dim=s["hidden"],
            ),
            vision_config=dict(
                depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=s["hidden"]
            ),
            text_config=_text_config(s, tok, "qwen2_5_omni_text", rope_parameters=rope),
            **ids,
        )
    elif family == "voxtral":
        cfg = VoxtralConfig(
            audio_config=dict(
                model_type="voxtral_encoder",
                hidden_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=64 * VOXTRAL_FRAMES_PER_TOKEN,
                num_mel_bins=s["n_mels"],
                max_source_positions=frames // 2,
            ),
            text_config=_text_config(s, tok, "llama", rope_theta=10000.0),
            audio_token_id=tid("[AUDIO]"),
        )
    elif family == "af3":
        cfg = AudioFlamingo3Config(
            audio_config=dict(
                model_type="audioflamingo3_encoder",
                hidden_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=128,
                num_mel_bins=s["n_mels"],
                max_source_positions=frames // 2,
            ),
            text_config=_text_config(s, tok, "qwen2"),
            audio_token_id=tid("<sound>"),
        )
    else:
        raise SteerAudioError(f"unknown model family {family!r}: use one of {', '.join(FAMILIES)}")
    _set_attn(cfg, s["attn"])
    return cfg


def _set_attn(cfg: Any, attn: str) -> None:
    cfg._attn_implementation = attn
    for sub in ("text_config", "audio_config", "vision_config"):
        if getattr(cfg, sub, None) is not None:
            getattr(cfg, sub)._attn_implementation = attn


def build_tiny_model(
    family: str, spec: dict[str, Any] | None = None, dtype: torch.dtype | None = None
) -> Any:
    s = _spec(spec)
    cpu_rng = torch.random.get_rng_state()
    try:
        torch.manual_seed(int(s["seed"]))
        model = _MODEL_CLASSES[family](build_config(family, s)).eval()
    finally:
        torch.random.set_rng_state(cpu_rng)
    if dtype is not None:
        model = model.to(dtype)
    return model


def build_tiny_processor(family: str, spec: dict[str, Any] | None = None) -> Any:
    s = _spec(spec)
    tok = build_tokenizer(family)
    fe = _feature_extractor(s)
    if family == "qwen2.5-omni":
        return _omni_processor(fe, tok, OMNI_TEMPLATE)
    if family == "voxtral":
        return VoxtralAdapter(fe, tok, {t: int(tok.convert_tokens_to_ids(t)) for t in VOXTRAL_SPECIAL_IDS})  # type: ignore[arg-type]
    if family == "af3":
        return AF3AudioProcessor(
            feature_extractor=fe, tokenizer=tok, chat_template=AF3_TEMPLATE, max_audio_len=s["window_s"]
        )
    raise SteerAudioError(f"unknown model family {family!r}: use one of {', '.join(FAMILIES)}")


class OmniAudioProcessor(Qwen2_5OmniProcessor):
    """Qwen2.5-Omni's processor for audio + text prompts, without image and video processors.

    transformers' Qwen2-VL video processor (and the class check of the processor's video slot) needs torchvision,
    which is not a dependency here; prompts here hold no images or videos, so those slots stay empty. Audio and
    text go through the unchanged `Qwen2_5OmniProcessor` code (placeholder expansion, feature extraction)."""

    def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
        if argument_name in ("image_processor", "video_processor") and argument is None:
            return None
        return super().check_argument_for_proper_class(argument_name, argument)


def _omni_processor(fe: Any, tok: Any, chat_template: str | None) -> Qwen2_5OmniProcessor:
    return OmniAudioProcessor(
        image_processor=None,
        video_processor=None,
        feature_extractor=fe,
        tokenizer=tok,
        chat_template=chat_template,
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


# -- Voxtral ---------------------------------------------------------------------------------------------


class VoxtralAdapter:
    """Voxtral prompts with the processor interface `encode()` uses: `apply_chat_template(conv, ...)` renders
    `<s>[INST][BEGIN_AUDIO][AUDIO]{text}[/INST]` (one `[AUDIO]` placeholder per audio part), and
    `__call__(text=, audio=)` expands each placeholder to the audio's token count and computes the features.

    Token count: the audio is zero-padded to whole windows (30 s for the real model); each window gives
    `frames / 2` encoder frames and the projector groups 4 of them into one token (375 per 30 s window).
    Features: `[windows, n_mels, frames]`, the windows of every row in row order (what the model scatters).
    This mirrors `VoxtralProcessor.apply_chat_template` + mistral-common's audio encoding. Checked outside the
    project (mistral-common 1.12.0 is no dependency here): its InstructTokenizerV7/V11/V13 encode a user turn
    [audio, text] as exactly `<s>[INST][BEGIN_AUDIO]` + `[AUDIO]` x 375 per started 30 s window + text +
    `[/INST]` (3 s -> 375, 31 s -> 750), with the audio zero-padded to whole 30 s windows, as here. That
    check used a tekken vocabulary shipped with mistral-common with Voxtral's ids set by hand, not
    Voxtral's own tekken.json (not available offline).
    """

    def __init__(self, feature_extractor: Any, tokenizer: Any, special_ids: dict[str, int]) -> None:
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer
        self.special_ids = dict(special_ids)
        self.audio_token_id = self.special_ids["[AUDIO]"]
        self._split = re.compile("(" + "|".join(re.escape(t) for t in self.special_ids) + ")")

    @property
    def window_samples(self) -> int:
        return int(self.feature_extractor.n_samples)

    def tokens_per_window(self) -> int:
        return int(self.feature_extractor.nb_max_frames) // 2 // VOXTRAL_FRAMES_PER_TOKEN

    def apply_chat_template(
        self,
        conversation: list[dict[str, Any]],
        add_generation_prompt: bool = True,
        tokenize: bool = False,
        **_: Any,
    ) -> str:
        if tokenize:
            raise SteerAudioError("VoxtralAdapter.apply_chat_template renders text only (tokenize=False)")
        out = "<s>"
        for msg in conversation:
            if msg["role"] != "user":
                raise SteerAudioError(f"Voxtral prompts here hold user turns only, got role {msg['role']!r}")
            content = msg["content"]
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
            body = ""
            for p in parts:
                if p.get("type") == "audio":
                    body += "[BEGIN_AUDIO][AUDIO]"
                elif "text" in p:
                    text = str(p["text"])
                    if self._split.search(text):
                        raise SteerAudioError(
                            f"prompt text contains a Voxtral control token ({', '.join(self.special_ids)}): "
                            f"{text[:80]!r}"
                        )
                    body += text
            out += f"[INST]{body}[/INST]"
        return out

    def n_audio_tokens(self, n_samples: int) -> int:
        return max(1, math.ceil(n_samples / self.window_samples)) * self.tokens_per_window()

    def _ids(self, text: str, n_tokens: list[int]) -> list[int]:
        ids: list[int] = []
        queue = list(n_tokens)
        for piece in self._split.split(text):
            if not piece:
                continue
            if piece == "[AUDIO]":
                if not queue:
                    raise SteerAudioError("a Voxtral prompt has more audio placeholders than audios")
                ids += [self.audio_token_id] * queue.pop(0)
            elif piece in self.special_ids:
                ids.append(self.special_ids[piece])
            else:
                ids += list(self.tokenizer.encode(piece, add_special_tokens=False))
        if queue:
            raise SteerAudioError("a Voxtral prompt has fewer audio placeholders than audios")
        return ids

    def _features(self, wav: np.ndarray) -> torch.Tensor:
        w = self.window_samples
        n_win = max(1, math.ceil(len(wav) / w))
        padded = np.zeros(n_win * w, dtype=np.float32)
        padded[: len(wav)] = wav
        feats = self.feature_extractor(
            padded, sampling_rate=16000, padding="longest", truncation=False, return_tensors="pt"
        )["input_features"]  # [1, n_mels, n_win * frames]
        frames = int(self.feature_extractor.nb_max_frames)
        return feats.reshape(feats.shape[1], n_win, frames).transpose(0, 1)

    def __call__(
        self,
        text: str | list[str],
        audio: Sequence[np.ndarray] | None = None,
        sampling_rate: int = 16000,
        padding: bool = True,
        return_tensors: str = "pt",
        **_: Any,
    ) -> BatchFeature:
        texts = [text] if isinstance(text, str) else list(text)
        audios = list(audio or [])
        if sampling_rate != 16000:
            raise SteerAudioError(f"Voxtral takes 16 kHz audio, got {sampling_rate} Hz")
        if len(audios) != len(texts):
            raise SteerAudioError(f"got {len(texts)} prompts but {len(audios)} audios; they must match 1:1")
        rows = [self._ids(t, [self.n_audio_tokens(len(a))]) for t, a in zip(texts, audios, strict=True)]
        width = max(len(r) for r in rows)
        pad = int(self.tokenizer.pad_token_id or 0)
        left = getattr(self.tokenizer, "padding_side", "left") == "left"
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            sl = slice(width - len(r), width) if left else slice(0, len(r))
            ids[i, sl] = torch.tensor(r)
            mask[i, sl] = 1
        data: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if audios:
            data["input_features"] = torch.cat([self._features(np.asarray(a, np.float32)) for a in audios])
        return BatchFeature(data=data)


# -- specs, real checkpoints -----------------------------------------------------------------------------


def family_spec(
    name: str, kind: str, hub_id: str | None, revision: str | None, extra: dict[str, Any]
) -> dict:
    """The spec fields of a family entry (called by `registry.resolve_spec`)."""
    spec: dict[str, Any] = {"family": FAMILY_OF[name]}
    if kind == "tiny-family":
        spec["tiny"] = {**TINY_FAMILY_DEFAULT, **extra.get("tiny", {})}
    else:
        spec |= {"hub_id": hub_id, "revision": revision}
        if extra.get("local_path"):
            spec["local_path"] = str(extra["local_path"])
    return spec


def _source(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if spec.get("local_path"):
        return spec["local_path"], {"local_files_only": True}
    return spec["hub_id"], {"revision": spec.get("revision")}


def _family(spec: dict[str, Any]) -> str:
    fam = spec.get("family")
    if fam not in FAMILIES:
        raise SteerAudioError(f"model spec names unknown family {fam!r}: use one of {', '.join(FAMILIES)}")
    return str(fam)


def load_config(spec: dict[str, Any]) -> Any:
    fam = _family(spec)
    if spec["kind"] == "tiny-family":
        return build_config(fam, spec.get("tiny"))
    from .registry import _missing_weights

    src, kw = _source(spec)
    try:
        # for Qwen2.5-Omni this reads the thinker part of the full Omni config
        return _CONFIG_CLASSES[fam].from_pretrained(src, **kw)
    except OSError as e:
        raise _missing_weights(spec, e) from e


def build_module(
    spec: dict[str, Any],
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    meta: bool = False,
    **placement: Any,
) -> torch.nn.Module:
    """The module of a family spec in eval mode: tiny (random weights) or a real checkpoint; `meta=True`
    builds the weightless skeleton from the config. `placement` (e.g. device_map) goes to `from_pretrained`."""
    fam = _family(spec)
    if spec["kind"] == "tiny-family":
        model = build_tiny_model(fam, spec.get("tiny"), dtype=dtype)
    elif meta:
        model = _MODEL_CLASSES[fam]._from_config(load_config(spec))
    else:
        from .registry import _missing_weights

        src, kw = _source(spec)
        try:
            model = _MODEL_CLASSES[fam].from_pretrained(src, dtype=dtype, **kw, **placement)
        except OSError as e:
            raise _missing_weights(spec, e) from e
    if device is not None and not meta:
        model = model.to(device)
    return model.eval().requires_grad_(False)


def load_processor(spec: dict[str, Any]) -> Any:
    fam = _family(spec)
    if spec["kind"] == "tiny-family":
        return build_tiny_processor(fam, spec.get("tiny"))
    from transformers import AutoFeatureExtractor, AutoTokenizer

    from .registry import _missing_weights

    src, kw = _source(spec)
    try:
        if fam == "af3":
            return AF3AudioProcessor.from_pretrained(src, **kw)
        fe = AutoFeatureExtractor.from_pretrained(src, **kw)
        try:
            tok = AutoTokenizer.from_pretrained(src, **kw)
        except (ImportError, ValueError) as e:
            if fam == "voxtral":
                raise SteerAudioError(
                    "Voxtral's tokenizer needs the `mistral-common` package (pip install 'mistral-common[audio]')"
                ) from e
            raise
    except OSError as e:
        raise _missing_weights(spec, e) from e
    if fam == "voxtral":
        return VoxtralAdapter(fe, tok, _voxtral_special_ids(tok))
    # Qwen2.5-Omni: audio + text processor (no torchvision), with the checkpoint's processor chat template
    template = _checkpoint_chat_template(src, kw) or tok.chat_template
    if not template:
        raise SteerAudioError(f"the Qwen2.5-Omni checkpoint {src!r} carries no chat template")
    return _omni_processor(fe, tok, template)


def _voxtral_special_ids(tok: Any) -> dict[str, int]:
    """Voxtral's control-token ids from the tokenizer when it knows them all, else the real checkpoint's."""
    try:
        ids = {t: tok.convert_tokens_to_ids(t) for t in VOXTRAL_SPECIAL_IDS}
    except (AttributeError, KeyError, ValueError, TypeError):
        return dict(VOXTRAL_SPECIAL_IDS)
    unk = getattr(tok, "unk_token_id", None)
    if any(not isinstance(i, int) or i == unk for i in ids.values()):
        return dict(VOXTRAL_SPECIAL_IDS)
    return ids


def _checkpoint_chat_template(src: str, kw: dict[str, Any]) -> str | None:
    """The processor chat template of a checkpoint: `chat_template.jinja`, else the legacy `chat_template.json`."""
    import json

    from transformers.utils.hub import cached_file

    for fname in ("chat_template.jinja", "chat_template.json"):
        path = cached_file(src, fname, _raise_exceptions_for_missing_entries=False, **kw)
        if path:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            return text if fname.endswith(".jinja") else str(json.loads(text)["chat_template"])
    return None


def family_spec_for_folder(folder: str) -> dict[str, Any] | None:
    """A spec for a local checkpoint folder of one of these families (by its config.json `model_type`), or
    None for any other model type: lets `registry.resolve_spec` route a local Omni/Voxtral/AF3 folder here."""
    import json
    from pathlib import Path

    cfg = Path(folder) / "config.json"
    if not cfg.is_file():
        return None
    model_type = json.loads(cfg.read_text()).get("model_type")
    fam = {
        "qwen2_5_omni": "qwen2.5-omni",
        "qwen2_5_omni_thinker": "qwen2.5-omni",
        "voxtral": "voxtral",
        "audioflamingo3": "af3",
    }.get(str(model_type))
    if fam is None:
        return None
    path = str(Path(folder).resolve())
    return {"name": path, "kind": "family", "family": fam, "local_path": path, "scoring": "letters"}
