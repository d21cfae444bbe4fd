"""The embedded real small model `mini` (kind "mini": Whisper-base encoder + Gemma-3-270M + the trained
projector shipped in `steer_audio/assets/mini/`), assembled by `steer-audio mini-setup` (models/mini/)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import SteerAudioError
from ..io import sha256_file
from .base import ModelKind, Spec, finish

if TYPE_CHECKING:
    from .registry import ModelEntry


def _assemble() -> Any:
    try:
        from .mini import assemble
    except ImportError as e:
        raise SteerAudioError("the embedded model `mini` is not available in this installation") from e
    return assemble


def projector_sha(weights: Any) -> str | None:
    """The trained projector's sha256: part of the spec, so a cache made with other weights is refused."""
    a = _assemble()
    path = Path(weights) if weights else a.ASSETS_DIR / a.PROJECTOR_FILE
    return sha256_file(path) if path.is_file() else None


class MiniKind(ModelKind):
    name = "mini"

    def spec_fields(self, entry: ModelEntry, revision: str | None, extra: dict[str, Any]) -> dict[str, Any]:
        return {"weights": extra.get("weights"), "projector_sha256": projector_sha(extra.get("weights"))}

    def config(self, spec: Spec) -> Any:
        return self.module(spec).config

    def module(self, spec: Spec, dtype: Any = None, device: Any = None, **placement: Any) -> torch.nn.Module:
        a = _assemble()
        try:
            model, _ = a.load_mini(weights=spec.get("weights"), dtype=dtype or torch.float32)
        except a.MiniSetupError as e:
            raise SteerAudioError(str(e)) from e
        return finish(model, device)

    def processor(self, spec: Spec) -> Any:
        a = _assemble()
        try:
            return a.build_processor(a.load_tokenizer())
        except a.MiniSetupError as e:
            raise SteerAudioError(str(e)) from e


KINDS: dict[str, ModelKind] = {"mini": MiniKind()}
