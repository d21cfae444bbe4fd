"""`mini`: a small real audio-language model (Whisper-base encoder + Gemma-3-270M) inside the real
``Qwen2AudioForConditionalGeneration`` class."""

from steer_audio.models.mini.assemble import (
    MODULE_FACTS,
    WINDOW_S,
    MiniSetupError,
    build_mini,
    default_cache_dir,
    is_set_up,
    last_position_logits,
    load_mini,
    setup_mini,
)

__all__ = [
    "MODULE_FACTS",
    "WINDOW_S",
    "MiniSetupError",
    "build_mini",
    "default_cache_dir",
    "is_set_up",
    "last_position_logits",
    "load_mini",
    "setup_mini",
]
