"""steer-audio: audio-specialist heads and audio-minus-silence steering for audio-language models.

The data flow is the architecture; one sub-package per stage:

    data/      examples (MMAU-format JSON, audio, negatives, prompts)      -> Example lists
    models/    explicit per-architecture table, registry, nnsight wrapper  -> AudioLM
    capture/   two-pass (audio, negative) nnsight capture                   -> capture cache (safetensors shards)
    discover/  head scores r, specialist set S_K, listening score, checks   -> heads.json, summary.json
    steer/     steering directions and cached / forward scoring             -> per-example option scores
    evaluate/  methods x alpha selection on calibration, statistics         -> predictions.jsonl, summary.json
    report/    Markdown tables and PNG figures                              -> report.md, *.png

The public API is the names in `__all__` (steer_audio/api.py, steer_audio/steering.py):

    import steer_audio as sa
    model = sa.load_model("tiny")
    cap = sa.capture_examples(model, examples)           # audio + silence passes, in memory
    heads = sa.find_heads(cap, k=8)                      # r [L, H] and the specialists S_K
    steer = sa.head_guided(cap, heads, alpha=2.0)        # one v(x) per example, with its layers and weights
    with model.trace(examples[0]):                       # your own nnsight trace
        steer.edit(model)
        ...
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it (imported on first use, so `import steer_audio.cli` or any
#: submodule stays as light as it was)
_EXPORTS: dict[str, str] = {
    "AVSSteering": "steer_audio.steering",
    "Capture": "steer_audio.api",
    "Example": "steer_audio.data.mmau",
    "HeadScores": "steer_audio.api",
    "HeadSet": "steer_audio.discover.heads",
    "HeadSteering": "steer_audio.steering",
    "Model": "steer_audio.api",
    "ResidualSteering": "steer_audio.steering",
    "RunConfig": "steer_audio.config",
    "SteerAudioError": "steer_audio.errors",
    "Steering": "steer_audio.steering",
    "avs": "steer_audio.api",
    "capture_examples": "steer_audio.api",
    "find_heads": "steer_audio.api",
    "head_guided": "steer_audio.api",
    "head_level": "steer_audio.api",
    "listening_score": "steer_audio.api",
    "load_examples": "steer_audio.api",
    "load_model": "steer_audio.api",
    "load_steering": "steer_audio.steering",
    "make_example": "steer_audio.api",
    "option_logits": "steer_audio.api",
    "run": "steer_audio.api",
    "single_layer": "steer_audio.api",
}

__all__ = [
    "AVSSteering",
    "Capture",
    "Example",
    "HeadScores",
    "HeadSet",
    "HeadSteering",
    "Model",
    "ResidualSteering",
    "RunConfig",
    "SteerAudioError",
    "Steering",
    "avs",
    "capture_examples",
    "find_heads",
    "head_guided",
    "head_level",
    "listening_score",
    "load_examples",
    "load_model",
    "load_steering",
    "make_example",
    "option_logits",
    "run",
    "single_layer",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'steer_audio' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:
    from .api import (
        Capture,
        HeadScores,
        Model,
        avs,
        capture_examples,
        find_heads,
        head_guided,
        head_level,
        listening_score,
        load_examples,
        load_model,
        make_example,
        option_logits,
        single_layer,
    )
    from .data.mmau import Example
    from .discover.heads import HeadSet
    from .errors import SteerAudioError
    from .steering import AVSSteering, HeadSteering, ResidualSteering, Steering, load_steering
