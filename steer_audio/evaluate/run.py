"""Stage: capture cache + splits -> every method of the paper's Tables 1-4 and Figure 2 (alpha and layer
chosen on the calibration split only), plus direction controls and logit-contrast baselines.

Methods (METHOD.md §§4-5; `aad` and `contrastive-options` from the neighbouring literature):
  baseline          no intervention
  head-guided       v = sum_l w_l (h^l(x) - h^l(x0)) added to h^L                 (cached, no forward)
  single-layer      v_l added to h^L, (l, alpha) chosen on calibration              (cached)
  random-layer      head-guided with K uniformly random heads, several seeds        (cached)
  head-level        alpha * sum_h W_O[:, h] dz^{l,h} after attention, specialists or random heads (forward)
  aad               (1 + alpha) logit(x) - alpha logit(x0)                            (cached)
  contrastive-options  log p(option | x) - alpha log p(option | x0), over options    (cached)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..capture.cache import CaptureCache, CaptureData
from ..capture.inputs import encode
from ..capture.trace import envoys
from ..data.audio import load_audio
from ..data.mmau import Example
from ..discover.heads import HeadSet, correctness, predictions, random_heads
from ..discover.run import Discovery, discover
from ..errors import SteerAudioError
from ..progress import bar
from ..steer import cached, forward
from .stats import bootstrap_ci, mcnemar

log = logging.getLogger(__name__)

METHODS = (
    "baseline",
    "head-guided",
    "single-layer",
    "random-layer",
    "head-level",
    "aad",
    "contrastive-options",
    "avs",
)
DEFAULT_GRID = [0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0]


@dataclass
class EvalConfig:
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    heads: str = "specialist"
    alpha: float | None = None  # None = auto (chosen on calibration over `grid`)
    grid: list[float] = field(default_factory=lambda: list(DEFAULT_GRID))
    k: int = 20
    k_sweep: list[int] = field(default_factory=lambda: [10, 20, 30])
    seeds: int = 10
    ranking: str = "abs"
    normalise: bool = True
    draws: int = 100
    seed: int = 0
    controls: bool = True
    batch_size: int = 8
    reuse_prefix: bool = True

    def validate(self, n_heads: int) -> None:
        bad = [x for x in self.methods if x not in METHODS]
        if bad:
            raise SteerAudioError(f"unknown method(s) {bad}: use {', '.join(METHODS)}")
        if self.heads not in ("specialist", "random"):
            raise SteerAudioError(f"--heads must be specialist or random, got {self.heads!r}")
        grid = [self.alpha] if self.alpha is not None else self.grid
        if not grid or not all(math.isfinite(a) for a in grid):
            raise SteerAudioError(f"the alpha grid must be non-empty and finite, got {grid}")
        for k in {self.k, *self.k_sweep}:
            if not 1 <= k <= n_heads:
                raise SteerAudioError(f"K={k} is outside 1..{n_heads} (the model has {n_heads} heads)")

    @property
    def alphas(self) -> list[float]:
        return [float(self.alpha)] if self.alpha is not None else [float(a) for a in self.grid]


def _acc(logits: torch.Tensor, ex: list[Example], tiebreak: torch.Tensor | None = None) -> np.ndarray:
    return correctness(predictions(logits, tiebreak), [e.correct for e in ex])


def _pick(curve: list[float], alphas: list[float]) -> int:
    """argmax accuracy on calibration; ties go to the smaller |alpha|."""
    best = max(curve)
    return min((i for i, c in enumerate(curve) if c == best), key=lambda i: (abs(alphas[i]), i))


@dataclass
class MethodResult:
    name: str
    params: dict[str, Any]
    pred: np.ndarray  # eval predictions (option index)
    calib_curve: dict[str, list[float]] | None = None
    eval_curve: dict[str, list[float]] | None = None
    #: re-applies the chosen configuration to other cached data (option-order permutations); None = forward-only
    predict: Any = None


class Evaluator:
    def __init__(
        self,
        cache: CaptureCache,
        calib_ex: list[Example],
        eval_ex: list[Example],
        cfg: EvalConfig,
        model: Any = None,
    ):
        self.cfg, self.model = cfg, model
        self.cal_ex = [e for e in calib_ex if e.id in cache.index["examples"]]
        self.ev_ex = [e for e in eval_ex if e.id in cache.index["examples"]]
        self.ev_missing = [e for e in eval_ex if e.id not in cache.index["examples"]]
        if not self.cal_ex:
            raise SteerAudioError("no calibration example has a capture (all missing?)")
        if not self.ev_ex:
            raise SteerAudioError("no evaluation example has a capture (all missing?)")
        self.dc = cache.load([e.id for e in self.cal_ex])
        self.de = cache.load([e.id for e in self.ev_ex])
        self.ro = cache.readout()
        self.n_layers = self.dc["resid_a"].shape[1]
        n_heads = self.dc["mass_a"].shape[1] * self.dc["mass_a"].shape[2]
        cfg.validate(n_heads)
        self.results: list[MethodResult] = []
        self.extra: dict[str, Any] = {}

    # -- helpers -------------------------------------------------------------------------------------------
    def _cached_curve(
        self, v_cal: torch.Tensor | None, v_ev: torch.Tensor | None
    ) -> tuple[list[float], list[float]]:
        a = self.cfg.alphas
        lc = cached.score(self.dc, self.ro, v_cal, a)
        le = cached.score(self.de, self.ro, v_ev, a)
        return [float(_acc(x, self.cal_ex).mean()) for x in lc], [
            float(_acc(x, self.ev_ex).mean()) for x in le
        ]

    def _layer_steer(self, name: str, hs: HeadSet, params: dict[str, Any]) -> MethodResult:
        v_c, v_e = cached.head_guided_direction(self.dc, hs), cached.head_guided_direction(self.de, hs)
        cal, ev = self._cached_curve(v_c, v_e)
        i = _pick(cal, self.cfg.alphas)
        a = self.cfg.alphas[i]
        pred = predictions(cached.score(self.de, self.ro, v_e, [a])[0])
        return MethodResult(
            name,
            {
                **params,
                "alpha": a,
                "K": hs.k,
                "layer_set": sorted(hs.layer_weights()),
                "layer_weights": hs.layer_weights(),
            },
            pred,
            {"alpha": self.cfg.alphas, "accuracy": cal},
            {"alpha": self.cfg.alphas, "accuracy": ev},
        )

    # -- methods -------------------------------------------------------------------------------------------
    def run(self) -> Discovery:
        cfg = self.cfg
        disc = discover(
            self.dc, self.de, self.cal_ex, self.ev_ex, cfg.k, cfg.ranking, cfg.normalise, cfg.draws, cfg.seed
        )
        self.disc = disc
        rng = np.random.default_rng(cfg.seed)
        main_heads = disc.heads if cfg.heads == "specialist" else random_heads(disc.r, cfg.k, rng)
        self.results.append(
            MethodResult(
                "baseline", {}, predictions(self.de["logits_a"]), predict=lambda d: predictions(d["logits_a"])
            )
        )
        steps = [m for m in cfg.methods if m != "baseline"]
        with bar(len(steps), "evaluate") as p:
            for m in steps:
                p.status(m)
                getattr(self, "_m_" + m.replace("-", "_"))(disc, main_heads)
                p.advance(1)
        return disc

    def _m_head_guided(self, disc: Discovery, hs: HeadSet) -> None:
        res = self._layer_steer("head-guided", hs, {"heads": self.cfg.heads})
        self.results.append(res)
        if self.cfg.controls:
            self._controls(hs, res.params["alpha"])
        # Table 3 / Table 4: K sweep, specialists vs matched random heads (mean +- sd over seeds)
        sweep = []
        base = self._acc_full(predictions(self.de["logits_a"]))
        for k in self.cfg.k_sweep:
            from ..discover.heads import select

            spec = select(disc.r, k, self.cfg.ranking)
            rs = self._layer_steer("head-guided", spec, {})
            gains_rand = []
            for s in range(self.cfg.seeds):
                rh = random_heads(disc.r, k, np.random.default_rng(1000 + s))
                gains_rand.append(self._acc_full(self._layer_steer("random-layer", rh, {}).pred) - base)
            sweep.append(
                {
                    "K": k,
                    "specialist_gain": self._acc_full(rs.pred) - base,
                    "specialist_alpha": rs.params["alpha"],
                    "random_gain_mean": float(np.mean(gains_rand)),
                    "random_gain_sd": float(np.std(gains_rand, ddof=1)) if len(gains_rand) > 1 else 0.0,
                    "random_gains": gains_rand,
                    "layer_set": rs.params["layer_set"],
                    "n_layers": len(rs.params["layer_set"]),
                }
            )
        self.extra["k_sweep"] = sweep

    def _m_random_layer(self, disc: Discovery, hs: HeadSet) -> None:
        accs, preds = [], []
        for s in range(self.cfg.seeds):
            rh = random_heads(disc.r, self.cfg.k, np.random.default_rng(1000 + s))
            r = self._layer_steer("random-layer", rh, {})
            accs.append(self._acc_full(r.pred))
            preds.append(r)
        med = preds[int(np.argsort(accs)[len(accs) // 2])]
        med.params |= {
            "seeds": self.cfg.seeds,
            "acc_mean": float(np.mean(accs)),
            "acc_sd": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
            "note": "predictions of the median seed",
        }
        self.results.append(med)

    def _m_single_layer(self, disc: Discovery, hs: HeadSet) -> None:
        best = None
        curves = {}
        for layer in range(self.n_layers):
            v_c = cached.single_layer_direction(self.dc, layer)
            v_e = cached.single_layer_direction(self.de, layer)
            cal, ev = self._cached_curve(v_c, v_e)
            curves[layer] = cal
            i = _pick(cal, self.cfg.alphas)
            key = (cal[i], -abs(self.cfg.alphas[i]), -layer)
            if best is None or key > best[0]:
                best = (key, layer, i, v_e, cal, ev)
        if best is None:
            raise SteerAudioError("the model has no decoder layers to steer")
        _, layer, i, v_e, cal, ev = best
        a = self.cfg.alphas[i]
        ro = self.ro

        def predict(d: CaptureData) -> np.ndarray:
            return predictions(cached.score(d, ro, cached.single_layer_direction(d, layer), [a])[0])

        self.results.append(
            MethodResult(
                "single-layer",
                {"layer": layer, "alpha": a},
                predict(self.de),
                {"alpha": self.cfg.alphas, "accuracy": cal},
                {"alpha": self.cfg.alphas, "accuracy": ev},
                predict,
            )
        )
        self.extra["single_layer_calib_best_by_layer"] = {str(k): max(v) for k, v in curves.items()}

    def _m_aad(self, disc: Discovery, hs: HeadSet) -> None:
        def f(d: CaptureData, a: float) -> torch.Tensor:
            return (1 + a) * d["logits_a"] - a * d["logits_n"].masked_fill(torch.isinf(d["logits_n"]), 0.0)

        self._logit_method("aad", f)

    def _m_contrastive_options(self, disc: Discovery, hs: HeadSet) -> None:
        def f(d: CaptureData, a: float) -> torch.Tensor:
            la, ln = d["logits_a"].log_softmax(-1), d["logits_n"].log_softmax(-1)
            return la - a * ln.masked_fill(torch.isinf(ln), 0.0)

        self._logit_method("contrastive-options", f)

    def _logit_method(self, name: str, f: Any) -> None:
        """Contrasts of the two passes can tie exactly (identical passes): ties go to the audio-pass logits,
        never silently to option A (the first option is the answer in 39.5% of MMAU test-mini)."""
        al = self.cfg.alphas
        dc, de = self.dc, self.de
        cal = [float(_acc(f(dc, a), self.cal_ex, dc["logits_a"]).mean()) for a in al]
        ev = [float(_acc(f(de, a), self.ev_ex, de["logits_a"]).mean()) for a in al]
        a = al[_pick(cal, al)]
        self.results.append(
            MethodResult(
                name,
                {"alpha": a},
                predictions(f(de, a), de["logits_a"]),
                {"alpha": al, "accuracy": cal},
                {"alpha": al, "accuracy": ev},
                lambda d: predictions(f(d, a), d["logits_a"]),
            )
        )

    def _m_head_level(self, disc: Discovery, hs: HeadSet) -> None:
        if self.model is None:
            raise SteerAudioError(
                "head-level steering needs the model (it runs forward passes); load it or drop the method"
            )
        sets = {
            "specialist": disc.heads,
            "random": random_heads(disc.r, self.cfg.k, np.random.default_rng(self.cfg.seed + 7)),
        }
        kinds = list(sets)
        n_a = len(self.cfg.alphas)
        # one prefix pass per batch serves every head set (the prefix is the unsteered prompt)
        cal_all = self._head_level(self.cal_ex, self.dc, [sets[k] for k in kinds])
        ev_all = self._head_level(self.ev_ex, self.de, [sets[k] for k in kinds])
        for j, kind in enumerate(kinds):
            heads = sets[kind]
            self._curve_result(
                f"head-level/{kind}",
                {"K": heads.k, "heads": heads.names()},
                cal_all[j * n_a : (j + 1) * n_a],
                ev_all[j * n_a : (j + 1) * n_a],
            )

    def _curve_result(
        self, name: str, params: dict[str, Any], cal_l: torch.Tensor, ev_l: torch.Tensor
    ) -> None:
        """A method scored by forward passes, logits [A, N, O] per split: alpha chosen on calibration."""
        cal = [float(_acc(x, self.cal_ex).mean()) for x in cal_l]
        ev = [float(_acc(x, self.ev_ex).mean()) for x in ev_l]
        i = _pick(cal, self.cfg.alphas)
        self.results.append(
            MethodResult(
                name,
                {"alpha": self.cfg.alphas[i], **params},
                predictions(ev_l[i]),
                {"alpha": self.cfg.alphas, "accuracy": cal},
                {"alpha": self.cfg.alphas, "accuracy": ev},
            )
        )

    def _head_level(self, exs: list[Example], data: CaptureData, sets: list[HeadSet]) -> torch.Tensor:
        """Logits [S * A, N, O] for S head sets (set-major)."""
        m = self.model

        def run(ev: Any, inputs: dict[str, torch.Tensor], sub: CaptureData) -> torch.Tensor:
            deltas = [forward.head_delta(sub["dz"], list(hs.heads), m.geom.n_layers) for hs in sets]
            return forward.head_level_logits(
                m.lm, ev, inputs, sub["cand"], deltas, self.cfg.alphas, self.cfg.reuse_prefix, m.remote
            )

        return self._forward_curve(exs, data, run)

    def _forward_curve(self, exs: list[Example], data: CaptureData, run: Any) -> torch.Tensor:
        """Batches of audio-only inputs through `run(envoys, inputs, cached rows)` -> logits [A, N, O]."""
        m = self.model
        ev = envoys(m.lm, m.arch, m.geom, m.name)
        bs = self.cfg.batch_size
        outs = []
        for s in range(0, len(exs), bs):
            chunk = exs[s : s + bs]
            sub = data.subset([e.id for e in chunk])
            wavs = [load_audio(e.audio_path, e.audio_array, max_seconds=m.audio_window_s) for e in chunk]
            b = encode(m.processor, chunk, wavs, None, m.prompt, m.geom.audio_token_id)
            inputs = m.model_inputs(b.model_inputs)
            outs.append(run(ev, inputs, sub)[:, :, : sub["cand"].shape[1]])
        return torch.cat(outs, 1)

    def _m_avs(self, disc: Discovery, hs: HeadSet) -> None:
        """Adaptive Vector Steering (Lin, Lee & Lee 2025): every layer, scheduled, norm-preserving (steer/avs.py)."""
        if self.model is None:
            raise SteerAudioError("avs needs the model (it runs forward passes); load it or drop the method")
        from ..steer import avs

        m = self.model
        schedule = avs.layer_schedule(m.geom.n_layers)

        def run(ev: Any, inputs: dict[str, torch.Tensor], sub: CaptureData) -> torch.Tensor:
            v = avs.avs_vectors(sub["resid_a"], sub["resid_n"])
            return avs.avs_sweep(m.lm, ev, inputs, sub["cand"], v, self.cfg.alphas, schedule, m.remote)

        self._curve_result(
            "avs",
            {"schedule": [round(float(x), 3) for x in schedule]},
            self._forward_curve(self.cal_ex, self.dc, run),
            self._forward_curve(self.ev_ex, self.de, run),
        )

    def _controls(self, hs: HeadSet, a: float) -> None:
        """Same alpha, other directions: v of another example, the mean v, a random direction of equal norm."""
        v = cached.head_guided_direction(self.de, hs)
        g = torch.Generator().manual_seed(self.cfg.seed)
        rnd = torch.randn(v.shape, generator=g)
        rnd = rnd / rnd.norm(dim=-1, keepdim=True) * v.norm(dim=-1, keepdim=True)
        dirs = {
            "other-example v": v.roll(1, 0),
            "mean v": v.mean(0, keepdim=True).expand_as(v),
            "random direction": rnd,
        }
        for name, d in dirs.items():
            pred = predictions(cached.score(self.de, self.ro, d, [a])[0])
            self.results.append(MethodResult(f"control/{name}", {"alpha": a, "of": "head-guided"}, pred))

    # -- option-order permutations ---------------------------------------------------------------------------
    def permutations(self, cache: CaptureCache, rotations: list[list[Example]]) -> None:
        """Re-score every cached method at its chosen configuration on rotated option orders."""
        self.rotations: list[tuple[list[Example], CaptureData]] = []
        for rot in rotations:
            have = [e for e in rot if e.id in cache.index["examples"]]
            self.rotations.append((have, cache.load([e.id for e in have])))

    def _permuted(self, r: MethodResult) -> dict[str, Any] | None:
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
        """Accuracy over all evaluation items, missing captures counted as wrong."""
        c = correctness(pred, [e.correct for e in self.ev_ex])
        return float(c.sum() / (len(self.ev_ex) + len(self.ev_missing)))

    def correct_vector(self, pred: np.ndarray) -> np.ndarray:
        c = correctness(pred, [e.correct for e in self.ev_ex])
        return np.concatenate([c, np.zeros(len(self.ev_missing))])

    def table(self) -> list[dict[str, Any]]:
        base = self.correct_vector(self.results[0].pred)
        domains = sorted({e.domain for e in self.ev_ex + self.ev_missing})
        all_ex = self.ev_ex + self.ev_missing
        rows = []
        for r in self.results:
            c = self.correct_vector(r.pred)
            row = {
                "method": r.name,
                **r.params,
                "accuracy": float(c.mean()),
                "ci95": bootstrap_ci(c, seed=self.cfg.seed),
                "n": len(c),
                "n_missing": len(self.ev_missing),
                "by_domain": {
                    d: float(np.mean([c[i] for i, e in enumerate(all_ex) if e.domain == d])) for d in domains
                },
            }
            conds = sorted({str(e.extra["condition"]) for e in all_ex if e.extra.get("condition")})
            if conds:  # listen-bench: accuracy per twin condition and how often a misleading hint is followed
                row["by_condition"] = {
                    k: float(np.mean([c[i] for i, e in enumerate(all_ex) if e.extra.get("condition") == k]))
                    for k in conds
                }
                chosen = dict(zip([e.id for e in self.ev_ex], r.pred, strict=True))
                mis = [
                    e
                    for e in all_ex
                    if e.extra.get("condition") == "misleading" and e.extra.get("prior_choice")
                ]
                if mis:
                    row["prior_follow_misleading"] = float(
                        np.mean(
                            [
                                e.id in chosen and e.choices[int(chosen[e.id])] == e.extra["prior_choice"]
                                for e in mis
                            ]
                        )
                    )
            if r.name != "baseline":
                row["gain_pp"] = 100 * (row["accuracy"] - float(base.mean()))
                row["gain_ci95_pp"] = [100 * x for x in bootstrap_ci(c - base, seed=self.cfg.seed)]
                row["mcnemar_vs_baseline"] = mcnemar(base, c)
            perm = self._permuted(r)
            if perm:
                row["option_permutations"] = perm
            if r.calib_curve:
                row["calib_curve"] = r.calib_curve
                row["eval_curve"] = r.eval_curve
            rows.append(row)
        return rows
