"""The nnsight wrapper: one class for local and remote (NDIF) execution.

`AudioLM` is a `Remotable`: its model key is the JSON spec of `registry`, so a server rebuilds the same model
offline. Locally it wraps an already built module (no meta phase).

Inputs of a trace: model kwargs (`input_ids=`, `attention_mask=`, `position_ids=`, `input_features=` ...), or,
once `example_encoder` is set (the public `load_model` sets it), examples directly: `trace(example)`,
`trace([ex1, ex2])`, `trace((audio, "question text"))`, like nnsight's `LanguageModel.trace("text")`. Each
invoke's examples are encoded (chat template, audio features, explicit position ids) and left-padded into
one batch as usual.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch
from nnsight.modeling.mixins.remotable import Remotable

from . import registry


class AudioLM(Remotable):
    """nnsight wrapper around a `*ForConditionalGeneration` audio-language model."""

    def __init__(self, *args: Any, spec: dict[str, Any], **kwargs: Any) -> None:
        self.spec = spec
        pad = kwargs.pop("pad_token_id", None)
        self._pad: int | None = None if pad is None else int(pad)
        #: turns the positional inputs of an invoke (examples, (audio, text) pairs) into model kwargs
        self.example_encoder: Callable[[tuple[Any, ...]], dict[str, Any]] | None = None
        super().__init__(*args, **kwargs)

    @property
    def pad_token_id(self) -> int:
        """The tokenizer's pad id (what `_batch` left-pads with), read from the model's processor if not given."""
        if self._pad is None:
            self._pad = int(registry.load_processor(self.spec).tokenizer.pad_token_id or 0)
        return self._pad

    # -- building ---------------------------------------------------------------------------------------
    def _load_meta(self, *args: Any, **kwargs: Any) -> torch.nn.Module:
        return registry.build_meta_module(self.spec)

    def _load(self, *args: Any, dtype: Any = None, device: Any = None, **kwargs: Any) -> torch.nn.Module:
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype.replace("torch.", ""))
        if isinstance(device, int):
            device = f"cuda:{device}"
        # a multi-GPU server actor passes device_map / max_memory: hand them to from_pretrained
        placement = {k: kwargs[k] for k in ("device_map", "max_memory") if kwargs.get(k) is not None}
        return registry.build_module(
            self.spec, dtype=dtype, device=None if placement else device, **placement
        )

    # -- remote identity --------------------------------------------------------------------------------
    def _remoteable_model_key(self) -> str:
        return json.dumps(self.spec, sort_keys=True)

    @classmethod
    def _remoteable_from_model_key(cls, model_key: str, **kwargs: Any) -> AudioLM:
        # no pad id in the key: a server resolves it from the model's own tokenizer when it first batches
        return cls(spec=json.loads(model_key), **kwargs)

    # -- batching of several invokes (left padding) -----------------------------------------------------
    def _batch_size(self, *inputs: Any, **kwargs: Any) -> int:
        if inputs and self.example_encoder is not None:
            return n_example_rows(inputs)
        ids = kwargs.get("input_ids", kwargs.get("inputs_embeds"))
        return 0 if ids is None else int(ids.shape[0])

    def _encode_invoke(self, inputs: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if not inputs or self.example_encoder is None:
            return inputs, kwargs
        return (), {**self.example_encoder(inputs), **kwargs}

    def _batch(self, invokes: list[tuple[tuple, dict]], fn: Any = None) -> tuple[tuple, dict]:
        invokes = [self._encode_invoke(a, k) for a, k in invokes]
        if len(invokes) == 1:
            return invokes[0]
        kws = [kw for _, kw in invokes]
        width = max(kw["input_ids"].shape[1] for kw in kws)

        def lpad(x: torch.Tensor, value: int) -> torch.Tensor:
            return torch.nn.functional.pad(x, (width - x.shape[1], 0), value=value)

        out: dict[str, Any] = {
            "input_ids": torch.cat([lpad(k["input_ids"], self.pad_token_id) for k in kws]),
            "attention_mask": torch.cat([lpad(k["attention_mask"], 0) for k in kws]),
            "position_ids": torch.cat([lpad(k["position_ids"], 0) for k in kws]),
        }
        if all("inputs_embeds" in k for k in kws):  # the fast audio path: [B, S, d], left-padded with zeros
            out["inputs_embeds"] = torch.cat(
                [
                    torch.nn.functional.pad(
                        k["inputs_embeds"], (0, 0, width - k["inputs_embeds"].shape[1], 0)
                    )
                    for k in kws
                ]
            )
        for feat in ("input_features", "feature_attention_mask", "input_features_mask"):
            if all(feat in k for k in kws):  # fixed-window audio features: rows concatenate as they are
                out[feat] = torch.cat([k[feat] for k in kws])
        for key in kws[0]:
            if key not in out:
                out[key] = kws[0][key]
        return (), out


def example_items(inputs: tuple[Any, ...]) -> list[Any]:
    """The items of an invoke's positional inputs: examples or (audio, text) pairs, one row each.
    `(ex,)`, `([ex1, ex2],)`, `((audio, text),)` and `(audio, text)` are all accepted."""
    if len(inputs) == 2 and isinstance(inputs[1], str):
        return [tuple(inputs)]
    items: list[Any] = []
    for x in inputs:
        if isinstance(x, list):
            items.extend(x)
        else:
            items.append(x)
    return items


def n_example_rows(inputs: tuple[Any, ...]) -> int:
    return len(example_items(inputs))
