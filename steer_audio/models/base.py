"""What a model *kind* provides: the spec fields of its entries, its config, module and processor.

A kind is one way of obtaining a model (a hub checkpoint, a local folder, a tiny random config built in
code, the embedded `mini`, a family's checkpoint ...). `registry.MODELS` names models; each names its kind;
`registry.KIND_MODULES` says which module provides the kind. No code branches on the kind's name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .registry import ModelEntry

#: a model spec: JSON-able, complete (also the remote model key), always with "name", "kind", "scoring"
Spec = dict[str, Any]


class ModelKind:
    """Base class of a model kind. Subclasses override `config`, `module` and `processor`."""

    #: the kind's name (the `kind` field of a spec)
    name: str = ""
    #: whether every model of this kind has random weights (labelled RANDOM WEIGHTS everywhere)
    random: bool = False

    def spec_fields(self, entry: ModelEntry, revision: str | None, extra: dict[str, Any]) -> dict[str, Any]:
        """The fields a registry entry of this kind adds to its spec (beyond name, kind, scoring)."""
        return {}

    def config(self, spec: Spec) -> Any:
        raise NotImplementedError

    def module(
        self,
        spec: Spec,
        dtype: torch.dtype | None = None,
        device: str | torch.device | None = None,
        **placement: Any,
    ) -> torch.nn.Module:
        """The module with its weights, in eval mode, gradients off."""
        raise NotImplementedError

    def meta_module(self, spec: Spec) -> torch.nn.Module:
        """The weightless skeleton (nnsight builds it under its meta device); by default the full module."""
        return self.module(spec)

    def processor(self, spec: Spec) -> Any:
        raise NotImplementedError

    def from_folder(self, folder: str) -> Spec | None:
        """A spec for a local checkpoint folder this kind recognises, else None."""
        return None


def finish(model: torch.nn.Module, device: str | torch.device | None = None) -> torch.nn.Module:
    """Move a built module to `device` (if given) and put it in eval mode with gradients off."""
    if device is not None:
        torch.nn.Module.to(model, device)
    return model.eval().requires_grad_(False)
