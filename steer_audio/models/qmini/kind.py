"""The model kind "qmini" for the registry (``registry.KIND_MODULES``): Whisper-base encoder +
Qwen2.5-Coder-0.5B-Instruct + the trained projector shipped in ``steer_audio/assets/qmini/``, assembled
by ``steer-audio mini-setup --model qmini``. Scored with the paper's letter protocol."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ...errors import SteerAudioError
from ...io import sha256_file
from ..base import ModelKind, Spec, finish
from . import assemble as qa

if TYPE_CHECKING:
    from ..registry import ModelEntry


def projector_sha(weights: Any) -> str | None:
    """The trained projector's sha256: part of the spec, so a cache made with other weights is refused."""
    path = Path(weights) if weights else qa.ASSETS_DIR / qa.PROJECTOR_FILE
    return sha256_file(path) if path.is_file() else None


class QminiKind(ModelKind):
    name = "qmini"

    def spec_fields(self, entry: ModelEntry, revision: str | None, extra: dict[str, Any]) -> dict[str, Any]:
        return {"weights": extra.get("weights"), "projector_sha256": projector_sha(extra.get("weights"))}

    def config(self, spec: Spec) -> Any:
        try:
            return qa.qmini_config(qa._require_cache(None))
        except qa.QminiSetupError as e:
            raise SteerAudioError(str(e)) from e

    def module(self, spec: Spec, dtype: Any = None, device: Any = None, **placement: Any) -> torch.nn.Module:
        try:
            model, _ = qa.load_qmini(weights=spec.get("weights"), dtype=dtype or torch.float32)
        except qa.QminiSetupError as e:
            raise SteerAudioError(str(e)) from e
        return finish(model, device)

    def processor(self, spec: Spec) -> Any:
        try:
            return qa.build_processor(qa.load_tokenizer())
        except qa.QminiSetupError as e:
            raise SteerAudioError(str(e)) from e


KINDS: dict[str, ModelKind] = {"qmini": QminiKind()}
