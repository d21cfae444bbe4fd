"""Named models. A model is fully described by a JSON-able *spec*; the same spec is the remote model key,
so an NDIF server rebuilds exactly the model the client names without asking a hub.

Two tables:

* `MODELS`: one `ModelEntry` row per named model (`--model NAME`): its kind, hub id, revision, scoring
  convention and, for the families of `families/`, its family.
* `KIND_MODULES`: kind -> the module whose `KINDS` dict provides it (a `base.ModelKind`: spec fields,
  config, module, processor). Modules are imported when a kind is first used, so `tiny` never imports
  the Omni / Voxtral / AF3 classes.

Adding a model of an existing kind is one row of `MODELS`; a new kind is one line of `KIND_MODULES` and a
module with a `KINDS` dict (see `tiny.py` for the smallest one).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import SteerAudioError
from .base import ModelKind, Spec


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    hub_id: str | None = None
    revision: str | None = None
    #: option scoring convention: "letters" (paper: label tokens A, B, C, ...) or "first-token"
    scoring: str = "letters"
    description: str = ""
    #: the family (`families.FAMILIES`) of a "family" / "tiny-family" entry
    family: str | None = None


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
    "qmini": ModelEntry(
        "qmini",
        "qmini",
        # the paper's letter protocol did not train at 0.5B (results/qmini/README.md): first token of each option
        scoring="first-token",
        description="Whisper-base + Qwen2.5-Coder-0.5B-Instruct + projector",
    ),
    # more families (steer_audio/models/families/): tiny random configs and the real checkpoints
    "tiny-qwen2.5-omni": ModelEntry(
        "tiny-qwen2.5-omni",
        "tiny-family",
        description="tiny Qwen2.5-Omni thinker, RANDOM weights",
        family="qwen2.5-omni",
    ),
    "tiny-voxtral": ModelEntry(
        "tiny-voxtral", "tiny-family", description="tiny Voxtral, RANDOM weights", family="voxtral"
    ),
    "tiny-af3": ModelEntry(
        "tiny-af3", "tiny-family", description="tiny Audio Flamingo 3, RANDOM weights", family="af3"
    ),
    "qwen2.5-omni": ModelEntry(
        "qwen2.5-omni",
        "family",
        "Qwen/Qwen2.5-Omni-7B",
        "main",
        "letters",
        "Qwen2.5-Omni-7B (thinker only)",
        family="qwen2.5-omni",
    ),
    "voxtral-mini": ModelEntry(
        "voxtral-mini",
        "family",
        "mistralai/Voxtral-Mini-3B-2507",
        "main",
        "letters",
        "Voxtral-Mini-3B-2507",
        family="voxtral",
    ),
    "af3": ModelEntry(
        "af3",
        "family",
        "nvidia/audio-flamingo-3-hf",
        "main",
        "letters",
        "Audio Flamingo 3 (transformers)",
        family="af3",
    ),
}

#: kind -> the module whose `KINDS` dict provides it (imported on first use)
KIND_MODULES: dict[str, str] = {
    "hub": "steer_audio.models.qwen2_audio",
    "path": "steer_audio.models.qwen2_audio",
    "tiny": "steer_audio.models.tiny",
    "random": "steer_audio.models.random7b",
    "mini": "steer_audio.models.embedded",
    "qmini": "steer_audio.models.qmini.kind",
    "tiny-family": "steer_audio.models.families",
    "family": "steer_audio.models.families",
}

#: kinds that recognise a local checkpoint folder by its config.json (tried in this order; else "path")
FOLDER_KINDS = ("family",)


def model_kind(kind: str) -> ModelKind:
    """The `ModelKind` named `kind` (its module is imported on first use)."""
    if kind not in KIND_MODULES:
        raise SteerAudioError(f"unknown model kind {kind!r}: use one of {', '.join(KIND_MODULES)}")
    return importlib.import_module(KIND_MODULES[kind]).KINDS[kind]  # type: ignore[no-any-return]


def kind_of(spec: Spec) -> ModelKind:
    return model_kind(str(spec["kind"]))


#: a `train-mini` output folder holds this file: `--model FOLDER` is its embedded model with that projector
PROJECTOR_FILE = "projector.safetensors"


def trained_projector_model(folder: Path) -> str | None:
    """The embedded model a trained-projector folder belongs to (its safetensors metadata `model`, else
    `mini`, which predates the field), or None when `folder` holds no projector."""
    f = folder / PROJECTOR_FILE
    if not f.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(f), "pt") as st:
        model = (st.metadata() or {}).get("model", "mini")
    if model not in MODELS or MODELS[model].kind not in ("mini", "qmini"):
        raise SteerAudioError(f"{f}: its metadata names model {model!r}, not an embedded model (mini, qmini)")
    return model


def resolve_spec(name: str, revision: str | None = None, **extra: Any) -> Spec:
    """Turn a user's --model value into a spec: a registry name, a hub id (org/name) or a local folder."""
    if name in MODELS:
        e = MODELS[name]
        spec: Spec = {"name": e.name, "kind": e.kind, "scoring": e.scoring}
        return spec | model_kind(e.kind).spec_fields(e, revision or e.revision, extra)
    folder = Path(name).expanduser()
    if folder.is_dir():
        trained = trained_projector_model(folder)
        if trained is not None:
            return resolve_spec(
                trained, revision=revision, **(extra | {"weights": str(folder / PROJECTOR_FILE)})
            )
        for k in FOLDER_KINDS:
            found = model_kind(k).from_folder(str(folder))
            if found is not None:
                return found
        return {"name": str(folder.resolve()), "kind": "path", "scoring": "letters"}
    if "/" in name and not name.startswith((".", "/")):
        # the hub id of a named entry of another kind (e.g. a family checkpoint) loads through that entry
        for e in MODELS.values():
            if e.hub_id == name and e.kind != "hub":
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


def is_random(spec: Spec) -> bool:
    return kind_of(spec).random


def load_config(spec: Spec) -> Any:
    return kind_of(spec).config(spec)


def build_module(
    spec: Spec,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    **placement: Any,
) -> torch.nn.Module:
    """Build the real module for a spec (weights loaded), in eval mode; `placement` (device_map, max_memory)
    goes to `from_pretrained` where the kind loads a checkpoint."""
    return kind_of(spec).module(spec, dtype=dtype, device=device, **placement)


def build_meta_module(spec: Spec) -> torch.nn.Module:
    """The weightless skeleton (built under nnsight's MetaDevice by the wrapper)."""
    return kind_of(spec).meta_module(spec)


def load_processor(spec: Spec) -> Any:
    return kind_of(spec).processor(spec)
