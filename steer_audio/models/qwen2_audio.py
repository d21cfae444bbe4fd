"""Qwen2-Audio checkpoints (`Qwen2AudioForConditionalGeneration`: Qwen2-Audio-7B-Instruct, R1-AQA, any
Qwen2-Audio fine-tune): kind "hub" (a Hugging Face id + revision, through the normal HF cache) and kind
"path" (a local folder saved with `save_pretrained`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .base import ModelKind, Spec, finish
from .hub import hub_source, missing_weights

if TYPE_CHECKING:
    from .registry import ModelEntry


class Qwen2AudioCheckpoint(ModelKind):
    """A Qwen2-Audio checkpoint; `hub_source` tells a hub id from a local folder."""

    def __init__(self, name: str) -> None:
        self.name = name

    def spec_fields(self, entry: ModelEntry, revision: str | None, extra: dict[str, Any]) -> dict[str, Any]:
        return {"hub_id": entry.hub_id, "revision": revision}

    def config(self, spec: Spec) -> Any:
        from transformers import AutoConfig

        src, kw = hub_source(spec)
        try:
            return AutoConfig.from_pretrained(src, **kw)
        except OSError as e:
            raise missing_weights(spec, e) from e

    def module(self, spec: Spec, dtype: Any = None, device: Any = None, **placement: Any) -> torch.nn.Module:
        from transformers import Qwen2AudioForConditionalGeneration

        src, kw = hub_source(spec)
        try:
            model = Qwen2AudioForConditionalGeneration.from_pretrained(
                src, dtype=dtype, use_safetensors=True, **kw, **placement
            )
        except OSError as e:
            raise missing_weights(spec, e) from e
        return finish(model, device)

    def meta_module(self, spec: Spec) -> torch.nn.Module:
        from transformers import Qwen2AudioForConditionalGeneration

        return Qwen2AudioForConditionalGeneration._from_config(self.config(spec)).eval()

    def processor(self, spec: Spec) -> Any:
        from transformers import AutoProcessor

        src, kw = hub_source(spec)
        try:
            return AutoProcessor.from_pretrained(src, **kw)
        except OSError as e:
            raise missing_weights(spec, e) from e


KINDS: dict[str, ModelKind] = {k: Qwen2AudioCheckpoint(k) for k in ("hub", "path")}
