"""Data-parallel capture backends: who runs the replicas of `--devices N` (a registry; the CLI picks one).

`processes` (the default) is capture/parallel.py's own pool of spawned processes on this host. Every other
backend is registered here by import path, so that its engine (Ray, ...) is imported only when chosen. A
backend has the signature of `run_capture_parallel(load_kw, devices, examples, out_dir, key, readout_ids,
**cap_kw) -> CaptureCache` and writes the same cache layout (capture/cache.py).

    with using("ray", address="auto"):   # the CLI's `--backend ray --ray auto`
        execute(...)                      # --devices N now runs on the Ray cluster
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from ..errors import SteerAudioError

#: backend name -> "module:function" of its run function (None: capture/parallel.py's own process pool)
BACKENDS: dict[str, str | None] = {
    "processes": None,
    "ray": "steer_audio.capture.ray_backend:run_capture_ray",
}


@dataclass(frozen=True)
class Choice:
    """The selected backend and its options (`address`: the Ray cluster to join; None starts a local one)."""

    name: str = "processes"
    address: str | None = None


_choice: ContextVar[Choice | None] = ContextVar("capture_backend", default=None)


def register(name: str, target: str | None) -> None:
    """Add a backend: `target` is "module:function" with the signature of run_capture_parallel."""
    BACKENDS[name] = target


@contextmanager
def using(name: str, address: str | None = None, replicas: int | None = None) -> Iterator[Choice]:
    """Run data-parallel captures inside this block on backend `name`. `replicas` (the CLI's --devices): a
    backend other than the process pool runs only data-parallel captures, so it needs at least two."""
    if name not in BACKENDS:
        raise SteerAudioError(f"unknown capture backend {name!r}: use one of {', '.join(BACKENDS)}")
    if address is not None and name != "ray":
        raise SteerAudioError(f"--ray {address} needs the ray backend, not {name!r}")
    if name != "processes" and replicas is not None and replicas < 2:
        raise SteerAudioError(f"--backend {name} runs the --devices replicas: give --devices N with N >= 2")
    choice = Choice(name, address)
    token = _choice.set(choice)
    try:
        yield choice
    finally:
        _choice.reset(token)


def current() -> Choice:
    return _choice.get() or Choice()


def selected() -> Callable[..., Any] | None:
    """The run function of the selected backend, None for the process pool (the caller runs it itself)."""
    choice = current()
    target = BACKENDS[choice.name]
    if target is None:
        return None
    mod, fn = target.split(":")
    run = getattr(importlib.import_module(mod), fn)
    if choice.address is None:
        return run
    return lambda *a, **k: run(*a, address=choice.address, **k)
