"""Steering objects: a direction that knows where it goes, how strongly, and where it came from.

Each steering object is a small frozen dataclass (as steering-vectors' `SteeringVector`) holding its
tensors, the layers (and heads) it writes to, their weights, α, and the ids of the examples its rows were
computed from. One row per example: the paper's directions are adaptive, v(x) is the example's own
audio-minus-negative difference at the final prompt position t; a single row (e.g. `.mean()`) applies
to every row of a batch.

Three ways to use one:

* `steering.edit(model)` inside an nnsight trace you open (`with model.trace(example): ...`): the edit
  is one of the primitives of `steer/generate.py` (`LayerAdd`, `HeadAdd`, `AvsSchedule`) applied to the
  last position; it runs locally or remotely like any nnsight intervention.
* `with steering.apply(model): ...` around any call of the underlying module (a forward, HF `generate`):
  plain PyTorch forward hooks that edit the last position of every forward, removed on exit. With the
  KV cache (HF `generate`'s default) that is t in the prefill and each new token in every decode step.
  Around an nnsight trace it steers the traced forward too; the trace then reads a hooked module's own
  output (before the hook's edit), while every later module sees the edit.
* `steering.primitive()` for `steer.generate.generate` (the project's batched, KV-cached decode loop).

`save(folder)` writes `steering.safetensors` (tensors) + `steering.json` (what it is) + `meta.json`
(provenance); `load_steering(folder)` reads any kind back.

Kinds (`STEERING_KINDS`):

* `ResidualSteering`: α·v added to the last decoder layer's output h_t^L (head-guided, Eqs. 4-6, with
  `layers` = L_S and `weights` = w_l; single-layer; any direction). Its effect on the option logits is
  also computable from a capture alone (`Capture.logits(steering)`, the CLI's cached scoring).
* `HeadSteering`: head-level steering (Eqs. 7-9): α·Δz^{l,h} added to head h's slice of o_proj's input
  in each layer of the set (= α W_O^l[:, h] Δz^{l,h} after the attention sublayer).
* `AVSSteering`: adaptive vector steering (steer/avs.py): at every layer l, h + α s_l v_l(x), rescaled
  to ||h||.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import torch

from .capture.trace import Envoys
from .errors import SteerAudioError
from .io import META, load_tensors, read_json, save_tensors, write_json
from .models.arch import resolve
from .steer.avs import steer_residual
from .steer.generate import AvsSchedule, HeadAdd, LayerAdd

STEERING_TENSORS = "steering.safetensors"
STEERING_JSON = "steering.json"
#: the version of the steering.json layout
FORMAT = 1


def _rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """x's rows for a batch of n rows: x itself when it has n rows, broadcast when it has one."""
    if x.shape[0] not in (1, n):
        raise SteerAudioError(f"the steering object has {x.shape[0]} rows but the batch has {n}")
    return x


def _out(y: Any) -> torch.Tensor:
    return y[0] if isinstance(y, tuple) else y


def _replace_out(y: Any, h: torch.Tensor) -> Any:
    return (h, *y[1:]) if isinstance(y, tuple) else h


@dataclass(frozen=True)
class Steering:
    """Base class: α, the method that made it, the example ids of its rows, free-form provenance."""

    alpha: float = 0.0
    method: str = ""
    ids: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    kind: ClassVar[str] = ""

    # -- what subclasses provide --------------------------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def fields(self) -> dict[str, Any]:
        """The kind's JSON fields besides alpha, method, ids, info."""
        return {}

    @classmethod
    def from_saved(cls, t: dict[str, torch.Tensor], f: dict[str, Any], common: dict[str, Any]) -> Steering:
        raise NotImplementedError

    def primitive(self) -> Any:
        """The `steer.generate` primitive with this α (its `apply(ev, cols)` edits a trace)."""
        raise NotImplementedError

    def _hooks(self, module: torch.nn.Module, arch: Any, name: str) -> list[Any]:
        raise NotImplementedError

    @property
    def n_rows(self) -> int:
        return int(next(iter(self.tensors().values())).shape[0])

    # -- shared behaviour ---------------------------------------------------------------------------------
    def with_alpha(self, alpha: float) -> Steering:
        """The same direction with another α."""
        return replace(self, alpha=float(alpha))

    def edit(self, model: Any, cols: slice | None = None) -> None:
        """Apply inside an nnsight trace the caller has opened on `model` (a `Model`, or its `Envoys`):
        edits the positions `cols` (default: the last one, t) of the forward being traced."""
        ev = model if isinstance(model, Envoys) else model.envoys()
        self.primitive().apply(ev, slice(-1, None) if cols is None else cols)

    @contextmanager
    def apply(self, model: Any) -> Iterator[None]:
        """Steer every forward of `model`'s module inside the block (PyTorch forward hooks on the modules the
        architecture table names): the last position of each forward is edited; hooks removed on exit."""
        if getattr(model, "remote", False):
            raise SteerAudioError(
                "apply() hooks the local module; on a remote model use edit() inside a trace"
            )
        handles = [] if self.alpha == 0 else self._hooks(model.lm._module, model.arch, model.name)
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def save(self, folder: Path, **provenance: Any) -> Path:
        """Write steering.safetensors + steering.json + meta.json (provenance: git sha, versions, command,
        plus `provenance`) into `folder`; returns the folder."""
        from .provenance import base_meta

        folder = Path(folder)
        save_tensors(folder / STEERING_TENSORS, self.tensors())
        doc = {
            "format": FORMAT,
            "kind": self.kind,
            "method": self.method,
            "alpha": self.alpha,
            "ids": list(self.ids),
            "info": self.info,
            **self.fields(),
        }
        write_json(folder / STEERING_JSON, doc)
        write_json(
            folder / META, base_meta("steering", steering=doc["kind"], method=self.method, **provenance)
        )
        return folder


@dataclass(frozen=True)
class ResidualSteering(Steering):
    """α·v(x) added to the last decoder layer's output at t. v: [N, d] (or [1, d]).

    `layers` / `weights`: the layers whose audio-minus-negative differences v combines and their weights
    (head-guided: L_S and w_l = n_l / K; single-layer: one layer, weight 1); recorded, not re-applied:
    v already is Σ_l w_l (h_t^l(x) − h_t^l(x⁰))."""

    v: torch.Tensor = field(default_factory=lambda: torch.zeros(1, 0))
    layers: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()

    kind: ClassVar[str] = "residual"

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"v": self.v}

    def fields(self) -> dict[str, Any]:
        return {"layers": list(self.layers), "weights": list(self.weights)}

    @classmethod
    def from_saved(cls, t: dict[str, torch.Tensor], f: dict[str, Any], common: dict[str, Any]) -> Steering:
        return cls(v=t["v"], layers=tuple(f["layers"]), weights=tuple(f["weights"]), **common)

    def primitive(self) -> LayerAdd:
        return LayerAdd(v=self.v, alpha=self.alpha)

    def mean(self) -> ResidualSteering:
        """One direction for every row: the mean of the rows (the `mean-v` control)."""
        return replace(self, v=self.v.float().mean(0, keepdim=True), ids=(), method=self.method + ":mean")

    def _hooks(self, module: torch.nn.Module, arch: Any, name: str) -> list[Any]:
        layers = resolve(module, arch.decoder_layers, name)
        add = self.alpha * self.v.float()

        def hook(_m: Any, _args: Any, y: Any) -> Any:
            h = _out(y).clone()
            h[:, -1] += _rows(add, h.shape[0]).to(h.device, h.dtype)
            return _replace_out(y, h)

        return [layers[len(layers) - 1].register_forward_hook(hook)]


@dataclass(frozen=True)
class HeadSteering(Steering):
    """Head-level steering: `deltas[l]` [N, H*dh] holds Δz^{l,h} in the slices of the selected heads of
    layer l (zeros elsewhere), added α times to o_proj's input at t."""

    deltas: dict[int, torch.Tensor] = field(default_factory=dict)
    heads: tuple[tuple[int, int], ...] = ()

    kind: ClassVar[str] = "head"

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(sorted(self.deltas))

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f"layer{layer}": d for layer, d in sorted(self.deltas.items())}

    def fields(self) -> dict[str, Any]:
        return {"heads": [list(h) for h in self.heads], "layers": list(self.layers)}

    @classmethod
    def from_saved(cls, t: dict[str, torch.Tensor], f: dict[str, Any], common: dict[str, Any]) -> Steering:
        deltas = {int(layer): t[f"layer{layer}"] for layer in f["layers"]}
        return cls(deltas=deltas, heads=tuple((int(a), int(b)) for a, b in f["heads"]), **common)

    def primitive(self) -> HeadAdd:
        return HeadAdd(deltas=self.deltas, alpha=self.alpha)

    def _hooks(self, module: torch.nn.Module, arch: Any, name: str) -> list[Any]:
        layers = resolve(module, arch.decoder_layers, name)
        handles = []
        for layer, d in sorted(self.deltas.items()):
            add = self.alpha * d.float()

            def pre(_m: Any, args: tuple[Any, ...], add: torch.Tensor = add) -> tuple[Any, ...]:
                x = args[0].clone()
                x[:, -1] += _rows(add, x.shape[0]).to(x.device, x.dtype)
                return (x, *args[1:])

            handles.append(resolve(layers[layer], arch.o_proj, name).register_forward_pre_hook(pre))
        return handles


@dataclass(frozen=True)
class AVSSteering(Steering):
    """AVS: at every decoder layer l, h_t ← (h_t + α s_l v_l(x)) · ||h_t|| / ||h_t + α s_l v_l(x)||.
    v: [N, L, d]; schedule: [L] (steer/avs.py `layer_schedule`)."""

    v: torch.Tensor = field(default_factory=lambda: torch.zeros(1, 0, 0))
    schedule: torch.Tensor = field(default_factory=lambda: torch.zeros(0))

    kind: ClassVar[str] = "avs"

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(range(int(self.schedule.shape[0])))

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"v": self.v, "schedule": self.schedule}

    @classmethod
    def from_saved(cls, t: dict[str, torch.Tensor], f: dict[str, Any], common: dict[str, Any]) -> Steering:
        return cls(v=t["v"], schedule=t["schedule"], **common)

    def primitive(self) -> AvsSchedule:
        return AvsSchedule(v=self.v, schedule=self.schedule, alpha=self.alpha)

    def _hooks(self, module: torch.nn.Module, arch: Any, name: str) -> list[Any]:
        layers = resolve(module, arch.decoder_layers, name)
        handles = []
        for layer, s in enumerate(self.schedule.tolist()):
            add = self.alpha * float(s) * self.v[:, layer].float()

            def hook(_m: Any, _args: Any, y: Any, add: torch.Tensor = add) -> Any:
                h = _out(y).clone()
                h[:, -1] = steer_residual(h[:, -1], _rows(add, h.shape[0]).to(h.device))
                return _replace_out(y, h)

            handles.append(layers[layer].register_forward_hook(hook))
        return handles


#: kind -> class (what `load_steering` reads back)
STEERING_KINDS: dict[str, type[Steering]] = {c.kind: c for c in (ResidualSteering, HeadSteering, AVSSteering)}


def load_steering(folder: Path) -> Steering:
    """Read a steering object written by `Steering.save`."""
    folder = Path(folder)
    doc = read_json(folder / STEERING_JSON)
    if doc.get("format") != FORMAT or doc.get("kind") not in STEERING_KINDS:
        raise SteerAudioError(
            f"{folder / STEERING_JSON} is not a steering object of format {FORMAT} "
            f"(kind {doc.get('kind')!r}; known: {', '.join(STEERING_KINDS)})"
        )
    common = {
        "alpha": float(doc["alpha"]),
        "method": str(doc["method"]),
        "ids": tuple(doc["ids"]),
        "info": dict(doc.get("info", {})),
    }
    return STEERING_KINDS[doc["kind"]].from_saved(load_tensors(folder / STEERING_TENSORS), doc, common)
