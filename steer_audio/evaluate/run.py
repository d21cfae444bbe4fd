"""Stage: capture cache + splits -> every registered method (steer/methods/), alpha and layer chosen on the
calibration split only, on real-audio items only (evaluate/protocol.py: the rule is written down there),
plus the diagnostic (ablated-audio) twins scored at the chosen configuration in a table of their own.

The methods and their help text live in the registry (`steer_audio.steer.methods`); this module forms
the statistics sets, runs the discovery (discover/run.py), runs the requested methods in registry order
and turns their predictions into the results table (accuracy, per condition and per alpha, per domain,
McNemar vs the baseline and vs the matched random-head control, n everywhere)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..capture.cache import CaptureCache, CaptureData
from ..config import DEFAULT_GRID, DEFAULT_METHODS, METHODS, EvalConfig
from ..data.mmau import Example
from ..discover.heads import correctness, random_heads
from ..discover.run import Discovery, discover
from ..errors import SteerAudioError
from ..progress import bar
from ..steer import methods as registry
from ..steer.methods.base import MethodContext, MethodResult
from .protocol import SELECTION_RULE, form_sets, is_ablated, pick
from .table import CONTROL, results_table

log = logging.getLogger(__name__)


__all__ = [
    "CONTROL",
    "DEFAULT_GRID",
    "DEFAULT_METHODS",
    "METHODS",
    "SELECTION_RULE",
    "EvalConfig",
    "Evaluator",
    "MethodResult",
    "pick",
]


class Evaluator:
    """Forms the statistics sets (real audio only), runs discovery and the requested methods, tabulates.

    `cal_ex` / `ev_ex` are the real-audio items with a capture, `ev_missing` the real-audio evaluation
    items without one (counted wrong), `diag_ex` the captured ablated-audio evaluation twins (diagnostic
    table only). Ablated-audio items passed in either split never reach D_cal, r, alpha selection or the
    headline numbers: the sets are formed here, whatever the caller passes."""

    def __init__(
        self,
        cache: CaptureCache,
        calib_ex: list[Example],
        eval_ex: list[Example],
        cfg: EvalConfig,
        model: Any = None,
    ):
        self.cfg, self.model = cfg, model
        self.sets = form_sets(calib_ex, eval_ex, cache.index["examples"])
        self.cal_ex, self.ev_ex = self.sets.cal, self.sets.ev
        self.ev_missing, self.diag_ex = self.sets.ev_missing, self.sets.diag
        if not self.cal_ex:
            raise SteerAudioError("no real-audio calibration example has a capture (all missing or ablated?)")
        if not self.ev_ex:
            raise SteerAudioError("no real-audio evaluation example has a capture (all missing or ablated?)")
        self.dc = cache.load([e.id for e in self.cal_ex])
        self.de = cache.load([e.id for e in self.ev_ex])
        self.dd: CaptureData | None = cache.load([e.id for e in self.diag_ex]) if self.diag_ex else None
        self.ro = cache.readout()
        self.n_layers = self.dc["resid_a"].shape[1]
        n_heads = self.dc["mass_a"].shape[1] * self.dc["mass_a"].shape[2]
        cfg.validate(n_heads)
        self.results: list[MethodResult] = []
        self.extra: dict[str, Any] = {}

    def run(self) -> Discovery:
        cfg = self.cfg
        disc = discover(
            self.dc, self.de, self.cal_ex, self.ev_ex, cfg.k, cfg.ranking, cfg.normalise, cfg.draws, cfg.seed
        )
        disc.summary["protocol"] = self.sets.describe()
        self.disc = disc
        rng = np.random.default_rng(cfg.seed)
        main_heads = disc.heads if cfg.heads == "specialist" else random_heads(disc.r, cfg.k, rng)
        ctx = MethodContext(
            cfg=cfg,
            dc=self.dc,
            de=self.de,
            dd=self.dd,
            ro=self.ro,
            cal_ex=self.cal_ex,
            ev_ex=self.ev_ex,
            diag_ex=self.diag_ex,
            n_ev_missing=len(self.ev_missing),
            disc=disc,
            main_heads=main_heads,
            model=self.model,
            extra=self.extra,
        )
        wanted = set(cfg.methods) | {"baseline"}
        steps = [m for m in METHODS if m in wanted]  # registry order; the baseline first
        with bar(len(steps), "evaluate") as p:
            for name in steps:
                p.status(name)
                for res in registry.get(name).run(ctx):
                    if res.diag_pred is None and res.predict is not None and self.dd is not None:
                        res.diag_pred = res.predict(self.dd)
                    self.results.append(res)
                p.advance(1)
        return disc

    # -- option-order permutations ---------------------------------------------------------------------------
    def permutations(self, cache: CaptureCache, rotations: list[list[Example]]) -> None:
        """Re-score every cached method at its chosen configuration on rotated option orders (real-audio
        items only, like the headline)."""
        self.rotations: list[tuple[list[Example], CaptureData]] = []
        for rot in rotations:
            have = [e for e in rot if e.id in cache.index["examples"] and not is_ablated(e)]
            self.rotations.append((have, cache.load([e.id for e in have])))

    def permuted(self, r: MethodResult) -> dict[str, Any] | None:
        rots = getattr(self, "rotations", None)
        if not rots or r.predict is None:
            return None
        n_all = len(self.ev_ex) + len(self.ev_missing)
        accs = [float(correctness(r.predict(d), [e.correct for e in exs]).sum() / n_all) for exs, d in rots]
        orig = self._acc_full(r.pred)
        return {
            "rotations": len(rots),
            "accuracy_by_rotation": accs,
            "accuracy_mean_over_orders": float(np.mean([orig, *accs])),
        }

    # -- accounting ----------------------------------------------------------------------------------------
    def _acc_full(self, pred: np.ndarray) -> float:
        """Accuracy over the real-audio evaluation items, missing captures counted as wrong."""
        c = correctness(pred, [e.correct for e in self.ev_ex])
        return float(c.sum() / (len(self.ev_ex) + len(self.ev_missing)))

    def correct_vector(self, pred: np.ndarray) -> np.ndarray:
        """0/1 per real-audio evaluation item (captured ones, then the missing ones as 0)."""
        c = correctness(pred, [e.correct for e in self.ev_ex])
        return np.concatenate([c, np.zeros(len(self.ev_missing))])

    def table(self) -> list[dict[str, Any]]:
        """The results table (evaluate/table.py)."""
        return results_table(self)
