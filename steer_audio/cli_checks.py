"""Option checks the CLI runs before anything is loaded, captured or written.

Each check raises `SteerAudioError` with one line: what is wrong, which option, what to do."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .errors import SteerAudioError

DTYPES = ("float32", "bfloat16", "float16")
RANKINGS = ("abs", "signed")


def check_dtype(dtype: str | None) -> None:
    if dtype is not None and dtype not in DTYPES:
        raise SteerAudioError(f"--dtype {dtype!r} is not a dtype here: use one of {', '.join(DTYPES)}")


def check_device(device: str | None) -> None:
    """cpu, cuda or cuda:N, and a CUDA device only where one exists."""
    if device is None or device == "cpu":
        return
    kind, _, num = device.partition(":")
    if kind != "cuda" or (num and not num.isdigit()):
        raise SteerAudioError(f"--device {device!r} is not a device here: use cpu, cuda or cuda:N")
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n == 0:
        raise SteerAudioError(
            f"--device {device}: this machine has no CUDA GPU; use --device cpu (or omit it)"
        )
    if num and int(num) >= n:
        raise SteerAudioError(
            f"--device {device}: this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1})"
        )


def check_ranking(ranking: str) -> None:
    if ranking not in RANKINGS:
        raise SteerAudioError(f"--ranking {ranking!r} is unknown: use one of {', '.join(RANKINGS)}")


def check_positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise SteerAudioError(f"{name} must be at least 1, got {value}")


def check_k(k: int, k_sweep: Sequence[int] = ()) -> None:
    """K and every --k-sweep value are head counts: at least 1 (the upper bound needs the model)."""
    check_positive("--k", k)
    bad = [x for x in k_sweep if x < 1]
    if bad:
        raise SteerAudioError(f"--k-sweep values must be at least 1, got {', '.join(map(str, bad))}")


def parse_numbers(option: str, text: str, kind: type = float) -> list[float]:
    """A comma-separated list of numbers; the message names the bad entries (never markup)."""
    parts = [p.strip() for p in text.split(",")]
    if any(not p for p in parts):
        raise SteerAudioError(
            f"{option} {text!r} has an empty entry: give comma-separated numbers, e.g. 0,1,2"
        )
    vals: list[float] = []
    bad: list[str] = []
    for p in parts:
        try:
            vals.append(kind(p))
        except ValueError:
            bad.append(p)
    if bad:
        raise SteerAudioError(f"{option}: {', '.join(bad)} is not a {kind.__name__}; give e.g. 0,1,2")
    return vals


def check_alphas(option: str, alphas: Sequence[float]) -> None:
    """Steering strengths are finite and non-negative (alpha adds alpha * v toward the audio)."""
    bad = [a for a in alphas if not math.isfinite(a) or a < 0]
    if bad:
        shown = ", ".join(str(a) for a in bad)
        raise SteerAudioError(
            f"{option}: {shown} not a finite alpha >= 0; steering strengths are finite and non-negative"
        )


def check_calib(calib: str | None, calib_fraction: float | None) -> None:
    if calib is not None and calib_fraction is not None:
        raise SteerAudioError(
            "--calib and --calib-fraction both choose the calibration split: give one of them"
        )
    if calib_fraction is not None and not 0.0 < calib_fraction < 1.0:
        raise SteerAudioError(f"--calib-fraction must be between 0 and 1 (exclusive), got {calib_fraction}")


def split_choices(values: Sequence[str]) -> list[str]:
    """`-c "a,b,c"` (one value: comma-separated) or `-c a -c "b, with a comma" -c c` (each value verbatim)."""
    opts = [c.strip() for c in values[0].split(",")] if len(values) == 1 else [c.strip() for c in values]
    empty = [i + 1 for i, c in enumerate(opts) if not c]
    if empty:
        raise SteerAudioError(
            f"--choices: option {', '.join(map(str, empty))} is empty in {', '.join(values)!r}; "
            "give non-empty options (repeat -c for options that contain commas)"
        )
    if len(opts) < 2:
        raise SteerAudioError("--choices needs at least two options (comma-separated, or -c repeated)")
    dup = sorted({c for c in opts if opts.count(c) > 1})
    if dup:
        raise SteerAudioError(f"--choices repeats {', '.join(repr(d) for d in dup)}: give distinct options")
    return opts


def check_capture_levers(spec: str) -> None:
    """--capture-levers: auto, none or a comma list of capture/levers.py names."""
    from .capture.levers import parse_levers

    parse_levers(spec)
