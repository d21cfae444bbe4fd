"""Benchmarks generated offline (listen-bench, its held-out set)."""

from __future__ import annotations

from ..errors import SteerAudioError


class BenchError(SteerAudioError, RuntimeError):
    """The benchmark cannot be generated (missing tool or data, token clash)."""
