"""Evaluation methods, one module per family (baseline, layer, head_level, logit, avs, gated, hint), listed
in one registry (`registry.REGISTRY`). Importing this package imports only the registry; a family module
is imported when its method first runs."""

from .registry import REGISTRY, Method, cli_help, defaults, get, markdown_list, names

__all__ = ["REGISTRY", "Method", "cli_help", "defaults", "get", "markdown_list", "names"]
