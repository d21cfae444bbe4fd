"""The capture levers' names and their `--capture-levers` spelling (no torch: the CLI checks them before anything
is loaded). What each lever does is capture/fast.py's."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import SteerAudioError

#: where the log-mel features are computed (capture/fast.py)
FEATURES = ("device", "host", "launch")


@dataclass(frozen=True)
class Levers:
    """Which capture levers `fast.install` turns on (the defaults: none, the plain path)."""

    features: str = "device"
    no_sync: bool = False
    liger: bool = False
    compile: bool = False
    encoder_graph: bool = False
    clip_features: bool = False

    def __post_init__(self) -> None:
        if self.features not in FEATURES:
            raise SteerAudioError(f"features must be one of {', '.join(FEATURES)}, got {self.features!r}")

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def parse_levers(spec: str) -> Levers | None:
    """`--capture-levers`: "auto" -> None (decided per model: `fast.resolve`), "none" -> no lever, or a comma list
    of lever names (`no_sync,liger`, `features=host|launch|device`). Anything else gets one message."""
    spec = spec.strip()
    if spec == "auto":
        return None
    if spec in ("none", ""):
        return Levers()
    names = {f.name for f in fields(Levers)}
    kw: dict[str, Any] = {}
    for tok in (t.strip() for t in spec.split(",") if t.strip()):
        key, _, value = tok.partition("=")
        if (
            key not in names
            or (key == "features") != bool(value)
            or (key == "features" and value not in FEATURES)
        ):
            raise SteerAudioError(
                f"--capture-levers: {tok!r} is not a lever; use auto, none or a comma list of "
                f"{', '.join(sorted(names - {'features'}))}, features=({'|'.join(FEATURES)})"
            )
        kw[key] = value if key == "features" else True
    return Levers(**kw)
