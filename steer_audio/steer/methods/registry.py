"""The method registry: name -> `Method` (help text, cached or forward-pass, run function).

Family modules register their methods on import (`steer/methods/__init__.py` imports them in the order
the CLI help and the README list them). `steer-audio evaluate --method` accepts exactly these names."""

from __future__ import annotations

from ...errors import SteerAudioError
from .base import Method

REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.name in REGISTRY:
        raise ValueError(f"method {method.name!r} is registered twice")
    REGISTRY[method.name] = method
    return method


def get(name: str) -> Method:
    try:
        return REGISTRY[name]
    except KeyError:
        raise SteerAudioError(f"unknown method {name!r}: use {', '.join(REGISTRY)}") from None


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def defaults() -> tuple[str, ...]:
    return tuple(m.name for m in REGISTRY.values() if m.default)


def cli_help() -> str:
    """The `--method` help text: every registered name, forward-pass methods marked."""
    parts = [f"{m.name}{' (forward)' if m.kind == 'forward' else ''}" for m in REGISTRY.values()]
    off = [m.name for m in REGISTRY.values() if not m.default]
    return " | ".join(parts) + f" (repeatable; default: all but {', '.join(off)})"


def markdown_list() -> str:
    """The README's method list (one bullet per method), generated from the registry."""
    return "\n".join(
        f"* `{m.name}` ({'forward passes' if m.kind == 'forward' else 'from the cache'}"
        f"{'' if m.default else '; not in the default set'}): {m.help}"
        for m in REGISTRY.values()
    )
