"""More audio-language model families: Qwen2.5-Omni (thinker only), Voxtral and Audio Flamingo 3.

One module per family (`qwen_omni`, `voxtral`, `af3`), each a `Family` row: its transformers classes, a
tiny random configuration and processor built in code (no hub: a byte-level tokenizer with the family's
special tokens and a chat template written here), and how a real checkpoint's processor is loaded. Each
family's architecture (module paths, the `.source` op of post-RoPE (q, k), the norm kind) is a row of
`arch.ARCHS`.

Two model kinds come from here (`KINDS`): "tiny-family" (the tiny random models `tiny-qwen2.5-omni`,
`tiny-voxtral`, `tiny-af3`; RANDOM weights) and "family" (a real checkpoint from the HF cache or a local
folder). The registry's entries name their family; nothing here imports the registry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ...errors import SteerAudioError
from ..base import ModelKind, Spec, finish
from ..hub import hub_source, missing_weights
from . import af3, qwen_omni, voxtral
from .common import TINY_FAMILY_DEFAULT, Family, feature_extractor, set_attn, tiny_spec

if TYPE_CHECKING:
    from ..registry import ModelEntry

FAMILIES: dict[str, Family] = {f.name: f for f in (qwen_omni.FAMILY, voxtral.FAMILY, af3.FAMILY)}


def family(name: Any) -> Family:
    if name not in FAMILIES:
        raise SteerAudioError(f"unknown model family {name!r}: use one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def build_tokenizer(name: str) -> Any:
    return family(name).tokenizer()


def build_config(name: str, spec: dict[str, Any] | None = None) -> Any:
    """The tiny random configuration of a family (decoder shapes from `spec`, small audio encoder)."""
    s, fam = tiny_spec(spec), family(name)
    return set_attn(fam.tiny_config(s, fam.tokenizer()), s["attn"])


def build_tiny_model(name: str, spec: dict[str, Any] | None = None, dtype: torch.dtype | None = None) -> Any:
    s = tiny_spec(spec)
    cpu_rng = torch.random.get_rng_state()
    try:
        torch.manual_seed(int(s["seed"]))
        model = family(name).model_class(build_config(name, s)).eval()
    finally:
        torch.random.set_rng_state(cpu_rng)
    return model if dtype is None else model.to(dtype)


def build_tiny_processor(name: str, spec: dict[str, Any] | None = None) -> Any:
    s, fam = tiny_spec(spec), family(name)
    return fam.tiny_processor(s, feature_extractor(s), fam.tokenizer())


def family_spec_for_folder(folder: str) -> Spec | None:
    """A spec for a local checkpoint folder of one of these families (by its config.json `model_type`),
    or None for any other model type."""
    cfg = Path(folder) / "config.json"
    if not cfg.is_file():
        return None
    model_type = str(json.loads(cfg.read_text()).get("model_type"))
    fam = next((f.name for f in FAMILIES.values() if model_type in f.model_types), None)
    if fam is None:
        return None
    path = str(Path(folder).resolve())
    return {"name": path, "kind": "family", "family": fam, "local_path": path, "scoring": "letters"}


class TinyFamilyKind(ModelKind):
    """A family's tiny random model, built from a config in code (RANDOM weights)."""

    name = "tiny-family"
    random = True

    def spec_fields(self, entry: ModelEntry, revision: str | None, extra: dict[str, Any]) -> dict[str, Any]:
        return {"family": entry.family, "tiny": {**TINY_FAMILY_DEFAULT, **extra.get("tiny", {})}}

    def config(self, spec: Spec) -> Any:
        return build_config(str(spec.get("family")), spec.get("tiny"))

    def module(self, spec: Spec, dtype: Any = None, device: Any = None, **placement: Any) -> torch.nn.Module:
        return finish(build_tiny_model(str(spec.get("family")), spec.get("tiny"), dtype=dtype), device)

    def processor(self, spec: Spec) -> Any:
        return build_tiny_processor(str(spec.get("family")), spec.get("tiny"))


class FamilyKind(ModelKind):
    """A family's real checkpoint, from the HF cache (hub id + revision) or a local folder."""

    name = "family"

    def spec_fields(self, entry: ModelEntry, revision: str | None, extra: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"family": entry.family, "hub_id": entry.hub_id, "revision": revision}
        if extra.get("local_path"):
            out["local_path"] = str(extra["local_path"])
        return out

    def config(self, spec: Spec) -> Any:
        src, kw = hub_source(spec)
        try:
            return family(spec.get("family")).config_class.from_pretrained(src, **kw)
        except OSError as e:
            raise missing_weights(spec, e) from e

    def module(self, spec: Spec, dtype: Any = None, device: Any = None, **placement: Any) -> torch.nn.Module:
        src, kw = hub_source(spec)
        try:
            model = family(spec.get("family")).model_class.from_pretrained(
                src, dtype=dtype, use_safetensors=True, **kw, **placement
            )
        except OSError as e:
            raise missing_weights(spec, e) from e
        return finish(model, device)

    def meta_module(self, spec: Spec) -> torch.nn.Module:
        return family(spec.get("family")).model_class._from_config(self.config(spec)).eval()

    def processor(self, spec: Spec) -> Any:
        src, kw = hub_source(spec)
        try:
            return family(spec.get("family")).processor(src, kw)
        except OSError as e:
            raise missing_weights(spec, e) from e

    def from_folder(self, folder: str) -> Spec | None:
        return family_spec_for_folder(folder)


KINDS: dict[str, ModelKind] = {k.name: k for k in (TinyFamilyKind(), FamilyKind())}

__all__ = [
    "FAMILIES",
    "KINDS",
    "TINY_FAMILY_DEFAULT",
    "Family",
    "build_config",
    "build_tiny_model",
    "build_tiny_processor",
    "build_tokenizer",
    "family",
    "family_spec_for_folder",
]
