"""Evaluation methods, one module per family, each registering itself (`registry.REGISTRY`).

The import order below is the order of `steer-audio evaluate --help`, the README's list and a run."""

from . import baseline, layer, head_level, logit, avs, gated, hint  # noqa: F401, I001  (registration order)
from .base import Method, MethodContext, MethodResult
from .registry import REGISTRY, cli_help, defaults, get, markdown_list, names

__all__ = [
    "REGISTRY",
    "Method",
    "MethodContext",
    "MethodResult",
    "cli_help",
    "defaults",
    "get",
    "markdown_list",
    "names",
]
