"""The training configuration of an embedded model's projector, and the one error type of training."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SteerAudioError


class TrainError(SteerAudioError, RuntimeError):
    """Training or evaluation cannot run (bad data folder, device, configuration, or a failed check)."""


@dataclass(frozen=True)
class TrainConfig:
    p: float = 0.9  # probability that a hint names the right answer
    no_hint: float = 0.5  # share of audio rows without a hint (1.0: no hint rows at all)
    silence: float = 0.1  # share of rows with the all-zero twin (target: the hinted choice)
    steps: int = 300
    batch_size: int = 8
    lr: float = 2e-3
    warmup: int = 10
    clip: float = 0.0  # gradient-norm clipping (0: off, the committed step-1200 recipe)
    seed: int = 0
    checkpoint_every: int = 10
    eval_every: int = 100
    eval_items: int = 40  # calibration base items per probe (neutral + misleading)
    threads: int = 2
    loss: str = "choices"  # "choices": softmax over the item's candidate tokens; "vocab": full vocabulary
    device: str = "cpu"  # where the model runs ("cpu", "cuda", "cuda:1"); fp32 on every device
    model: str = "mini"  # the embedded model (steer_audio/train/embedded.py)
    scoring: str = ""  # "letters" or "first-token"; "" = the model's own protocol
    extra_share: float = 0.5  # share of rows drawn from the --extra-train folders (only when some are given)
