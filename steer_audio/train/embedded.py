"""The table of embedded models whose projector we train: how to build each one (zero projector), load
trained weights, where its shipped projector lives, and which answer protocol it is scored with.

Adding a model is one row here (and its assembly package under ``steer_audio/models/``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..models.registry import MODELS
from .config import TrainError


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    description: str
    #: "first-token" (option text's first token) or "letters" (the paper's (A)-(D) label tokens)
    scoring: str
    #: ``(cache_dir) -> (model, processor)`` with a zero projector, eval mode, fp32 on the CPU
    build: Callable[[Path | None], tuple[Any, Any]]
    load_weights: Callable[[Any, Path], dict[str, str]]
    setup: Callable[..., Path]
    is_set_up: Callable[[Path | None], bool]
    default_cache_dir: Callable[[], Path]
    assets_dir: Path
    setup_error: type[Exception]
    projector_file: str = "projector.safetensors"
    recipe_file: str = "recipe.json"
    sampling_rate: int = 16_000

    @property
    def shipped_projector(self) -> Path:
        return self.assets_dir / self.projector_file


def _mini() -> EmbeddedModel:
    from ..models.mini import assemble as a

    return EmbeddedModel(
        name="mini",
        description="mini (Whisper-base encoder + Gemma-3-270M in Qwen2AudioForConditionalGeneration)",
        scoring=MODELS["mini"].scoring,  # one fact: the registry row says how the model is scored
        build=lambda cache: a.build_mini(cache),
        load_weights=a.load_trained_weights,
        setup=a.setup_mini,
        is_set_up=a.is_set_up,
        default_cache_dir=a.default_cache_dir,
        assets_dir=a.ASSETS_DIR,
        setup_error=a.MiniSetupError,
        projector_file=a.PROJECTOR_FILE,
        recipe_file=a.RECIPE_FILE,
        sampling_rate=a.SAMPLING_RATE,
    )


def _qmini() -> EmbeddedModel:
    from ..models.qmini import assemble as a

    return EmbeddedModel(
        name="qmini",
        description="qmini (Whisper-base encoder + Qwen2.5-Coder-0.5B-Instruct in Qwen2AudioForConditionalGeneration)",
        scoring=MODELS["qmini"].scoring,
        build=lambda cache: a.build_qmini(cache),
        load_weights=a.load_trained_weights,
        setup=a.setup_qmini,
        is_set_up=a.is_set_up,
        default_cache_dir=a.default_cache_dir,
        assets_dir=a.ASSETS_DIR,
        setup_error=a.QminiSetupError,
        projector_file=a.PROJECTOR_FILE,
        recipe_file=a.RECIPE_FILE,
        sampling_rate=a.SAMPLING_RATE,
    )


EMBEDDED: dict[str, Callable[[], EmbeddedModel]] = {"mini": _mini, "qmini": _qmini}


def embedded(name: str) -> EmbeddedModel:
    if name not in EMBEDDED:
        raise TrainError(f"unknown embedded model {name!r} (known: {', '.join(EMBEDDED)})")
    return EMBEDDED[name]()
