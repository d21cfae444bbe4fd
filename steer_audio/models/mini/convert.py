"""Converters for the pretrained parts of `mini`.

* Whisper-base in CTranslate2 format (``model.bin``, spec ``WhisperSpec`` version 6) -> a Hugging Face
  ``WhisperForConditionalGeneration`` state dict (encoder and decoder).
* Gemma-3-270M GGUF -> a dequantised ``Gemma3ForCausalLM`` (through transformers' ``gguf_file=`` loader)
  and a byte-fallback BPE tokenizer rebuilt from the GGUF vocabulary fields (transformers' own GGUF
  tokenizer conversion builds a Unigram model for Gemma-3, which tokenizes wrongly).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from ...errors import SteerAudioError

log = logging.getLogger(__name__)

# CTranslate2 dtype codes -> numpy dtypes (bf16 is handled separately)
_CT2_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
}
_CT2_BF16 = 5


class ConversionError(SteerAudioError, RuntimeError):
    """A pretrained file does not have the layout the converter expects."""


class _Reader:
    def __init__(self, data: bytes | memoryview) -> None:
        self.data = memoryview(data)
        self.off = 0

    def unpack(self, fmt: str) -> int:
        (value,) = struct.unpack_from("<" + fmt, self.data, self.off)
        self.off += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str:
        n = self.unpack("H")
        raw = bytes(self.data[self.off : self.off + n])
        self.off += n
        return raw.rstrip(b"\0").decode("utf-8")

    def take(self, n: int) -> memoryview:
        if self.off + n > len(self.data):
            raise ConversionError("CTranslate2 file is truncated")
        out = self.data[self.off : self.off + n]
        self.off += n
        return out


def read_ct2(data: bytes | memoryview) -> tuple[str, dict[str, torch.Tensor]]:
    """Parse a CTranslate2 ``model.bin`` (spec version 6) into ``(spec_name, {name: tensor})``.

    Aliases are resolved to the tensors they point to. Scalars become 0-d tensors.
    """
    r = _Reader(data)
    version = r.unpack("I")
    if version != 6:
        raise ConversionError(f"unsupported CTranslate2 binary version {version} (expected 6)")
    spec = r.string()
    r.unpack("I")  # spec revision
    n_vars = r.unpack("I")
    out: dict[str, torch.Tensor] = {}
    for _ in range(n_vars):
        name = r.string()
        rank = r.unpack("B")
        shape = [r.unpack("I") for _ in range(rank)]
        dt = r.unpack("B")
        nbytes = r.unpack("I")
        raw = r.take(nbytes)
        if dt == _CT2_BF16:
            arr16 = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            tensor = torch.from_numpy(arr16.view(np.float32).reshape(shape).copy())
        elif dt in _CT2_DTYPES:
            tensor = torch.from_numpy(np.frombuffer(raw, dtype=_CT2_DTYPES[dt]).reshape(shape).copy())
        else:
            raise ConversionError(f"unknown CTranslate2 dtype code {dt} for {name}")
        out[name] = tensor
    n_alias = r.unpack("I")
    for _ in range(n_alias):
        alias, target = r.string(), r.string()
        out[alias] = out[target]
    if r.off != len(r.data):
        raise ConversionError(f"trailing bytes in CTranslate2 file ({len(r.data) - r.off})")
    return spec, out


def _ln(sd: dict[str, torch.Tensor], dst: str, src: str, ct: dict[str, torch.Tensor]) -> None:
    sd[f"{dst}.weight"] = ct[f"{src}/gamma"]
    sd[f"{dst}.bias"] = ct[f"{src}/beta"]


def _lin(sd: dict[str, torch.Tensor], dst: str, src: str, ct: dict[str, torch.Tensor]) -> None:
    sd[f"{dst}.weight"] = ct[f"{src}/weight"]
    sd[f"{dst}.bias"] = ct[f"{src}/bias"]


def _split_fused(
    sd: dict[str, torch.Tensor], dst: str, names: Iterable[str], src: str, ct: dict[str, torch.Tensor]
) -> None:
    names = list(names)
    ws = ct[f"{src}/weight"].chunk(len(names), dim=0)
    bs = ct[f"{src}/bias"].chunk(len(names), dim=0)
    for n, w, b in zip(names, ws, bs, strict=True):
        sd[f"{dst}.{n}.weight"] = w.contiguous()
        if n != "k_proj":  # Whisper's key projection has no bias
            sd[f"{dst}.{n}.bias"] = b.contiguous()


def whisper_num_layers(ct: dict[str, torch.Tensor], side: str) -> int:
    n = 0
    while f"{side}/layer_{n}/ffn/linear_0/weight" in ct:
        n += 1
    return n


def ct2_whisper_to_hf(ct: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map CTranslate2 WhisperSpec variables to ``WhisperForConditionalGeneration`` parameter names."""
    sd: dict[str, torch.Tensor] = {}
    e, d = "model.encoder", "model.decoder"
    for c in ("conv1", "conv2"):
        sd[f"{e}.{c}.weight"] = ct[f"encoder/{c}/weight"]
        sd[f"{e}.{c}.bias"] = ct[f"encoder/{c}/bias"]
    sd[f"{e}.embed_positions.weight"] = ct["encoder/position_encodings/encodings"]
    _ln(sd, f"{e}.layer_norm", "encoder/layer_norm", ct)
    for i in range(whisper_num_layers(ct, "encoder")):
        s, t = f"encoder/layer_{i}", f"{e}.layers.{i}"
        _ln(sd, f"{t}.self_attn_layer_norm", f"{s}/self_attention/layer_norm", ct)
        _split_fused(sd, f"{t}.self_attn", ("q_proj", "k_proj", "v_proj"), f"{s}/self_attention/linear_0", ct)
        _lin(sd, f"{t}.self_attn.out_proj", f"{s}/self_attention/linear_1", ct)
        _ln(sd, f"{t}.final_layer_norm", f"{s}/ffn/layer_norm", ct)
        _lin(sd, f"{t}.fc1", f"{s}/ffn/linear_0", ct)
        _lin(sd, f"{t}.fc2", f"{s}/ffn/linear_1", ct)
    sd[f"{d}.embed_tokens.weight"] = ct["decoder/embeddings/weight"]
    sd[f"{d}.embed_positions.weight"] = ct["decoder/position_encodings/encodings"]
    _ln(sd, f"{d}.layer_norm", "decoder/layer_norm", ct)
    for i in range(whisper_num_layers(ct, "decoder")):
        s, t = f"decoder/layer_{i}", f"{d}.layers.{i}"
        _ln(sd, f"{t}.self_attn_layer_norm", f"{s}/self_attention/layer_norm", ct)
        _split_fused(sd, f"{t}.self_attn", ("q_proj", "k_proj", "v_proj"), f"{s}/self_attention/linear_0", ct)
        _lin(sd, f"{t}.self_attn.out_proj", f"{s}/self_attention/linear_1", ct)
        _ln(sd, f"{t}.encoder_attn_layer_norm", f"{s}/attention/layer_norm", ct)
        sd[f"{t}.encoder_attn.q_proj.weight"] = ct[f"{s}/attention/linear_0/weight"]
        sd[f"{t}.encoder_attn.q_proj.bias"] = ct[f"{s}/attention/linear_0/bias"]
        _split_fused(sd, f"{t}.encoder_attn", ("k_proj", "v_proj"), f"{s}/attention/linear_1", ct)
        _lin(sd, f"{t}.encoder_attn.out_proj", f"{s}/attention/linear_2", ct)
        _ln(sd, f"{t}.final_layer_norm", f"{s}/ffn/layer_norm", ct)
        _lin(sd, f"{t}.fc1", f"{s}/ffn/linear_0", ct)
        _lin(sd, f"{t}.fc2", f"{s}/ffn/linear_1", ct)
    sd["proj_out.weight"] = ct["decoder/embeddings/weight"]
    return sd


def whisper_hf_config_dict(ct: dict[str, torch.Tensor]) -> dict[str, object]:
    """A ``WhisperConfig`` keyword dict that matches the converted tensors."""
    d_model = int(ct["encoder/conv1/weight"].shape[0])
    n_heads = int(ct["encoder/num_heads"].item())
    return {
        "vocab_size": int(ct["decoder/embeddings/weight"].shape[0]),
        "num_mel_bins": int(ct["encoder/conv1/weight"].shape[1]),
        "d_model": d_model,
        "encoder_layers": whisper_num_layers(ct, "encoder"),
        "decoder_layers": whisper_num_layers(ct, "decoder"),
        "encoder_attention_heads": n_heads,
        "decoder_attention_heads": int(ct["decoder/num_heads"].item()),
        "encoder_ffn_dim": int(ct["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "decoder_ffn_dim": int(ct["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "max_source_positions": int(ct["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(ct["decoder/position_encodings/encodings"].shape[0]),
    }


def whisper_encoder_only(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder part of a converted Whisper state dict, with the ``model.encoder.`` prefix removed."""
    p = "model.encoder."
    return {k[len(p) :]: v for k, v in sd.items() if k.startswith(p)}


# ----------------------------------------------------------------------------------------------
# Gemma-3 (GGUF)

GGUF_TOKEN_NORMAL = 1
GGUF_TOKEN_UNKNOWN = 2
GGUF_TOKEN_CONTROL = 3
GGUF_TOKEN_USER_DEFINED = 4
GGUF_TOKEN_BYTE = 6


def _gguf_field(reader: object, key: str) -> object:
    from gguf import GGUFValueType

    fields = reader.fields  # type: ignore[attr-defined]
    if key not in fields:
        raise ConversionError(f"GGUF field {key!r} missing")
    f = fields[key]
    if f.types and f.types[0] == GGUFValueType.ARRAY:
        sub = f.types[-1]
        if sub == GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i].tolist()[0] for i in f.data]
    if f.types and f.types[0] == GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    return f.parts[f.data[0]].tolist()[0]


def gemma_vocab_from_gguf(gguf_path: Path) -> tuple[list[str], list[float], list[int], dict[str, int]]:
    """Return (tokens, scores, token types, special ids) read from a GGUF file."""
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf_path))
    tokens = _gguf_field(reader, "tokenizer.ggml.tokens")
    scores = _gguf_field(reader, "tokenizer.ggml.scores")
    types = _gguf_field(reader, "tokenizer.ggml.token_type")
    specials: dict[str, int] = {}
    for name in ("bos", "eos", "unknown", "padding"):
        key = f"tokenizer.ggml.{name}_token_id"
        if key in reader.fields:
            specials[name] = int(_gguf_field(reader, key))  # type: ignore[arg-type,call-overload]
    return tokens, [float(s) for s in scores], [int(t) for t in types], specials  # type: ignore[arg-type,return-value,attr-defined]


def build_gemma_tokenizer_object(
    tokens: list[str], scores: list[float], types: list[int], specials: dict[str, int]
) -> object:
    """Rebuild Gemma-3's byte-fallback BPE (a ``tokenizers.Tokenizer``) from GGUF vocabulary fields.

    Merges are all splits of a normal token into two vocabulary tokens; they are ranked by the merged
    token's score (higher first), then by the ids of the two halves.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors

    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise ConversionError("duplicate tokens in the GGUF vocabulary")
    ranked: list[tuple[float, int, int, str, str]] = []
    for tok, score, typ in zip(tokens, scores, types, strict=True):
        if typ != GGUF_TOKEN_NORMAL or len(tok) < 2:
            continue
        for cut in range(1, len(tok)):
            a, b = tok[:cut], tok[cut:]
            ia, ib = vocab.get(a), vocab.get(b)
            if ia is not None and ib is not None:
                ranked.append((-score, ia, ib, a, b))
    ranked.sort()
    merges = [(a, b) for _, _, _, a, b in ranked]
    unk = tokens[specials.get("unknown", 3)]
    bpe = models.BPE(vocab=vocab, merges=merges, unk_token=unk, fuse_unk=True, byte_fallback=True)
    tk = Tokenizer(bpe)
    tk.normalizer = normalizers.Replace(" ", "\u2581")
    tk.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    added = []
    for tok, typ in zip(tokens, types, strict=True):
        if typ == GGUF_TOKEN_CONTROL or (
            typ == GGUF_TOKEN_USER_DEFINED and tok.startswith("<") and tok.endswith(">")
        ):
            added.append(AddedToken(tok, special=True, normalized=False))
    tk.add_special_tokens(added)
    bos = tokens[specials.get("bos", 2)]
    tk.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])]
    )
    return tk


def gemma_tokenizer_from_gguf(gguf_path: Path) -> object:
    """A ``PreTrainedTokenizerFast`` for Gemma-3 rebuilt from the GGUF vocabulary."""
    from transformers import PreTrainedTokenizerFast

    tokens, scores, types, specials = gemma_vocab_from_gguf(gguf_path)
    tk = build_gemma_tokenizer_object(tokens, scores, types, specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token=tokens[specials.get("bos", 2)],
        eos_token=tokens[specials.get("eos", 1)],
        unk_token=tokens[specials.get("unknown", 3)],
        pad_token=tokens[specials.get("padding", 0)],
        add_bos_token=True,
        clean_up_tokenization_spaces=False,
        padding_side="left",
    )


def load_gemma_gguf(gguf_path: Path) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """Dequantise a Gemma-3 GGUF file with transformers; return (language-model state dict, text config dict).

    The state dict has ``Gemma3TextModel`` names (no ``model.`` prefix, no ``lm_head``: it is tied).
    """
    from transformers import AutoModelForCausalLM

    log.info("dequantising %s (about a minute on 2 cores)", gguf_path.name)
    lm = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, torch_dtype=torch.float32, local_files_only=True
    )
    cfg = lm.config.to_dict()
    prefix = "model."
    sd = {
        k[len(prefix) :]: v.detach().contiguous() for k, v in lm.state_dict().items() if k.startswith(prefix)
    }
    if "embed_tokens.weight" not in sd:
        raise ConversionError("GGUF Gemma state dict has no embed_tokens.weight")
    return sd, cfg
