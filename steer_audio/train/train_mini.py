"""Train and evaluate an embedded model's projector (`mini`, `qmini`) on listen-bench.

The code lives in one module per responsibility; this module keeps the names that callers import:

* ``config``: ``TrainConfig``, ``TrainError``;
* ``device``: device policy (``resolve_device``; fp32 without TF32 inside ``fp32_precision()`` only);
* ``embedded``: the table of embedded models (how to build each, its protocol, its shipped projector);
* ``encoder_cache``: the frozen encoder's outputs, once per clip;
* ``splice``: prompt ids and the projector's output spliced into the LM pass;
* ``sampler``: which rows each step sees;
* ``trainer``: the training loop, checkpoints, recipe;
* ``harness``: predictions and their summary on a split.
"""

from __future__ import annotations

from .config import TrainConfig, TrainError
from .device import fp32_precision, resolve_device
from .embedded import EMBEDDED, EmbeddedModel, embedded
from .encoder_cache import audio_key, build_encoder_cache, encode_audio, load_wave
from .harness import evaluate, predict, summarize
from .sampler import index_twins, sample_batch
from .splice import PromptCache, candidate_logits, last_hidden, last_logits
from .trainer import CHECKPOINT, ENCODER_CACHE, PROJECTOR_PREFIX, STATE, train

__all__ = [
    "CHECKPOINT",
    "EMBEDDED",
    "ENCODER_CACHE",
    "PROJECTOR_PREFIX",
    "STATE",
    "EmbeddedModel",
    "PromptCache",
    "TrainConfig",
    "TrainError",
    "audio_key",
    "build_encoder_cache",
    "candidate_logits",
    "embedded",
    "encode_audio",
    "evaluate",
    "fp32_precision",
    "index_twins",
    "last_hidden",
    "last_logits",
    "load_wave",
    "predict",
    "resolve_device",
    "sample_batch",
    "summarize",
    "train",
]
