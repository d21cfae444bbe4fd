"""Voxtral (`VoxtralForConditionalGeneration`, Voxtral-Mini-3B-2507): Whisper-style encoder + Llama decoder.

Voxtral's transformers processor cannot take audio in `__call__` (only through `apply_chat_template`, which
needs the `mistral-common` tokenizer backend), so `VoxtralAdapter` renders and encodes the prompt with the
same call signature `capture.inputs.encode()` uses for every other family."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoFeatureExtractor,
    AutoTokenizer,
    BatchFeature,
    Qwen2Tokenizer,
    VoxtralConfig,
    VoxtralForConditionalGeneration,
)

from ...errors import SteerAudioError
from .common import Family, byte_tokenizer, mel_frames, text_config, token_id

#: Voxtral (mistral "tekken" instruct) control tokens, with the ids of the real checkpoint: 24 is
#: `VoxtralProcessor.audio_token_id`; 1-4 are tekken's fixed specials; 25 for [BEGIN_AUDIO] is an assumption
#: not checked against Voxtral's tekken.json. Used only when the tokenizer cannot name these tokens itself.
VOXTRAL_SPECIAL_IDS = {"<s>": 1, "</s>": 2, "[INST]": 3, "[/INST]": 4, "[AUDIO]": 24, "[BEGIN_AUDIO]": 25}
#: Voxtral's projector groups 4 encoder frames into one LM token (intermediate_size = 4 * d_model)
VOXTRAL_FRAMES_PER_TOKEN = 4


def tokenizer() -> Qwen2Tokenizer:
    specials = ["</s>", "<pad>", "<s>", "[INST]", "[/INST]", "[AUDIO]", "[BEGIN_AUDIO]"]
    return byte_tokenizer("</s>", "<pad>", specials)


def tiny_config(s: dict[str, Any], tok: Qwen2Tokenizer) -> VoxtralConfig:
    return VoxtralConfig(
        audio_config=dict(
            model_type="voxtral_encoder",
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64 * VOXTRAL_FRAMES_PER_TOKEN,
            num_mel_bins=s["n_mels"],
            max_source_positions=mel_frames(s) // 2,
        ),
        text_config=text_config(s, tok, "llama", rope_theta=10000.0),
        audio_token_id=token_id(tok, "[AUDIO]"),
    )


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


def tiny_processor(s: dict[str, Any], fe: Any, tok: Qwen2Tokenizer) -> VoxtralAdapter:
    return VoxtralAdapter(fe, tok, {t: token_id(tok, t) for t in VOXTRAL_SPECIAL_IDS})


def checkpoint_processor(src: str, kw: dict[str, Any]) -> VoxtralAdapter:
    fe = AutoFeatureExtractor.from_pretrained(src, **kw)
    try:
        tok = AutoTokenizer.from_pretrained(src, **kw)
    except (ImportError, ValueError) as e:
        raise SteerAudioError(
            "Voxtral's tokenizer needs the `mistral-common` package (pip install 'mistral-common[audio]')"
        ) from e
    return VoxtralAdapter(fe, tok, special_ids(tok))


def special_ids(tok: Any) -> dict[str, int]:
    """Voxtral's control-token ids from the tokenizer when it knows them all, else the real checkpoint's."""
    try:
        ids = {t: tok.convert_tokens_to_ids(t) for t in VOXTRAL_SPECIAL_IDS}
    except (AttributeError, KeyError, ValueError, TypeError):
        return dict(VOXTRAL_SPECIAL_IDS)
    unk = getattr(tok, "unk_token_id", None)
    if any(not isinstance(i, int) or i == unk for i in ids.values()):
        return dict(VOXTRAL_SPECIAL_IDS)
    return ids


FAMILY = Family(
    name="voxtral",
    model_class=VoxtralForConditionalGeneration,
    config_class=VoxtralConfig,
    model_types=("voxtral",),
    tokenizer=tokenizer,
    tiny_config=tiny_config,
    tiny_processor=tiny_processor,
    processor=checkpoint_processor,
)
