"""Device policy of training and evaluation: which device, and fp32 meaning fp32 there.

``resolve_device`` only checks and returns the device. TF32 is switched off inside ``fp32_precision()``
only, and the previous settings are restored on exit, so importing or calling training code never
changes the process's matmul precision as a side effect.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .config import TrainError


def resolve_device(name: str) -> torch.device:
    """``name`` as a torch device, with one clear error if it is unknown or not present here."""
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise TrainError(f"unknown device {name!r} (cpu, cuda, cuda:N)") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainError(f"device {name!r} asked for, but this torch sees no CUDA device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise TrainError(f"device {name!r} asked for, but only {torch.cuda.device_count()} CUDA devices")
    elif dev.type != "cpu":
        raise TrainError(f"unsupported device {name!r} (cpu, cuda, cuda:N)")
    return dev


@contextmanager
def fp32_precision() -> Iterator[None]:
    """No TF32 in convolutions or matmuls while the block runs; the caller's settings come back after."""
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def model_device(model: object) -> torch.device:
    """The device the (single-device) model lives on."""
    return model.model.multi_modal_projector.linear.weight.device  # type: ignore[attr-defined]


def hardware(dev: torch.device) -> dict[str, str]:
    """Where a run ran (a GPU run is not bit-reproducible; the card belongs in the record)."""
    import platform

    import transformers

    name = (
        torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else (platform.processor() or platform.machine())
    )
    return {
        "device": str(dev),
        "name": name,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
