"""What every evaluation method shares: the registry entry (`Method`), the result it returns
(`MethodResult`) and the context it is run in (`MethodContext`: the real-audio calibration and evaluation
captures, the diagnostic twins, the readout, the discovery and the settings).

A method is a function `run(ctx) -> list[MethodResult]`, listed in `registry.py`. Every free parameter is chosen on calibration
with `evaluate.protocol.pick` / `pick_grid` (the rule is written down there); the evaluation split is
scored once at that choice. A method scored from the cache gives a `predict(data)` that re-applies the
chosen configuration to other cached rows (option rotations, diagnostic twins); a forward-pass method
scores its diagnostic rows itself (`diag_pred`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from ...capture.cache import CaptureData, Readout
from ...data.mmau import Example
from ...discover.heads import HeadSet, correctness, predictions
from ...discover.run import Discovery
from ...errors import SteerAudioError
from ...evaluate.protocol import pick
from .. import cached


class Settings(Protocol):
    """The evaluation settings a method reads (`evaluate.run.EvalConfig` provides them)."""

    methods: list[str]
    heads: str
    k: int
    k_sweep: list[int]
    seeds: int
    ranking: str
    normalise: bool
    seed: int
    controls: bool
    batch_size: int
    reuse_prefix: bool

    @property
    def alphas(self) -> list[float]: ...


@dataclass
class MethodResult:
    """One row of the results table: predictions on the real-audio evaluation items at the configuration
    chosen on calibration, and, for swept methods, correctness per alpha on both splits ([A, N])."""

    name: str
    params: dict[str, Any]
    pred: np.ndarray
    alphas: list[float] | None = None
    cal_correct: np.ndarray | None = None
    ev_correct: np.ndarray | None = None
    #: re-applies the chosen configuration to other cached data; None = forward-only
    predict: Callable[[CaptureData], np.ndarray] | None = None
    #: predictions on the diagnostic (ablated-audio) evaluation rows, at the chosen configuration
    diag_pred: np.ndarray | None = None

    @property
    def calib_curve(self) -> dict[str, list[float]] | None:
        if self.cal_correct is None or self.alphas is None:
            return None
        return {"alpha": list(self.alphas), "accuracy": [float(x) for x in self.cal_correct.mean(1)]}

    @property
    def eval_curve(self) -> dict[str, list[float]] | None:
        if self.ev_correct is None or self.alphas is None:
            return None
        return {"alpha": list(self.alphas), "accuracy": [float(x) for x in self.ev_correct.mean(1)]}


@dataclass
class MethodContext:
    """Everything a method may read. `dc` / `de` hold real-audio rows only (calibration / evaluation);
    `dd` the diagnostic evaluation rows (None when there are none), used only for the diagnostic table."""

    cfg: Settings
    dc: CaptureData
    de: CaptureData
    dd: CaptureData | None
    ro: Readout
    cal_ex: list[Example]
    ev_ex: list[Example]
    diag_ex: list[Example]
    n_ev_missing: int
    disc: Discovery
    main_heads: HeadSet
    model: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: forward-pass logits one method computed for another in a shared batch loop (methods/batches.py)
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def n_layers(self) -> int:
        return int(self.dc["resid_a"].shape[1])

    @property
    def alphas(self) -> list[float]:
        return self.cfg.alphas

    def correct(self, pred: np.ndarray, exs: list[Example]) -> np.ndarray:
        return correctness(pred, [e.correct for e in exs])

    def curve(
        self, logits: torch.Tensor, exs: list[Example], tiebreak: torch.Tensor | None = None
    ) -> np.ndarray:
        """Correctness [A, N] from candidate logits [A, N, O]."""
        return np.stack([self.correct(predictions(x, tiebreak), exs) for x in logits])

    def acc_full(self, pred: np.ndarray) -> float:
        """Accuracy over the real-audio evaluation items, missing captures counted as wrong."""
        return float(self.correct(pred, self.ev_ex).sum() / (len(self.ev_ex) + self.n_ev_missing))

    def need_model(self, name: str) -> Any:
        if self.model is None:
            raise SteerAudioError(
                f"{name} needs the model (it runs forward passes); load it or drop the method"
            )
        return self.model

    # -- layer-guided steering from the cache --------------------------------------------------------------
    def cached_curves(
        self, v_cal: torch.Tensor | None, v_ev: torch.Tensor | None
    ) -> tuple[np.ndarray, np.ndarray]:
        a = self.alphas
        return (
            self.curve(cached.score(self.dc, self.ro, v_cal, a), self.cal_ex),
            self.curve(cached.score(self.de, self.ro, v_ev, a), self.ev_ex),
        )

    def direction_result(
        self,
        name: str,
        direction: Callable[[CaptureData], torch.Tensor],
        params: dict[str, Any],
    ) -> MethodResult:
        """Steering h^L by alpha * direction(data), alpha chosen on calibration."""
        cal, ev = self.cached_curves(direction(self.dc), direction(self.de))
        i = pick(list(cal.mean(1)), self.alphas)
        a = self.alphas[i]
        ro = self.ro

        def predict(d: CaptureData) -> np.ndarray:
            return predictions(cached.score(d, ro, direction(d), [a])[0])

        return MethodResult(
            name, {**params, "alpha": a}, predict(self.de), list(self.alphas), cal, ev, predict
        )

    def layer_steer(self, name: str, hs: HeadSet, params: dict[str, Any]) -> MethodResult:
        """Head-guided layer steering (Eq. 5) with the head set `hs`."""
        res = self.direction_result(name, lambda d: cached.head_guided_direction(d, hs), params)
        res.params |= {
            "K": hs.k,
            "layer_set": sorted(hs.layer_weights()),
            "layer_weights": hs.layer_weights(),
        }
        return res
