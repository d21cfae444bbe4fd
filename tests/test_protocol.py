"""The evaluation protocol: ablated-audio twins (silence, ...) never reach D_cal, r, the specialist set,
alpha selection or the headline accuracy; they are scored in a diagnostic table of their own.

The capture holds listen-bench-style twins (neutral / misleading / consistent / silence) on the tiny
model. A run given the silence twins must equal, number for number, a run whose input had them removed;
and a naive computation that keeps them (the protocol switched off) must differ, so these tests can fail."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from steer_audio.capture.run import run_capture
from steer_audio.data import mmau
from steer_audio.discover import run as drun
from steer_audio.discover.heads import correctness, point_biserial, predictions
from steer_audio.errors import SteerAudioError
from steer_audio.evaluate import protocol
from steer_audio.evaluate.run import EvalConfig, Evaluator

CONDS = ("neutral", "misleading", "consistent", "silence")


def _bench(root: Path, n_base: int = 6) -> Path:
    """n_base clips per split, four twins each; the silence twin's clip is digital zeros."""
    rng = np.random.default_rng(3)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for split in ("calib", "test"):
        for i in range(n_base):
            base = f"{split}{i:02d}"
            t = np.arange(int((0.5 + 0.25 * (i % 3)) * 16000)) / 16000
            wav = 0.3 * np.sin(2 * np.pi * (180 + 70 * i) * t) + 0.05 * rng.standard_normal(t.shape[0])
            sf.write(root / "audio" / f"{base}.wav", wav.astype(np.float32), 16000, subtype="FLOAT")
            sf.write(root / "audio" / f"{base}-silence.wav", np.zeros_like(wav, dtype=np.float32), 16000)
            choices = [f"option {j}" for j in range(4)]
            ans, prior = choices[i % 4], choices[(i + 1) % 4]
            for cond in CONDS:
                hint = {"neutral": "", "consistent": f"Hint: {ans}. "}.get(cond, f"Hint: {prior}. ")
                rows.append(
                    {
                        "id": f"{base}-{cond}",
                        "audio_id": f"./audio/{base}{'-silence' if cond == 'silence' else ''}.wav",
                        "question": f"{hint}What is heard in clip {i}?",
                        "choices": choices,
                        "answer": ans,
                        "task": ("sound", "music", "speech")[i % 3],
                        "split": split,
                        "condition": cond,
                        "prior_choice": None
                        if cond == "neutral"
                        else (ans if cond == "consistent" else prior),
                        "twin_of": f"{base}-neutral",
                    }
                )
    path = root / "bench.json"
    path.write_text(json.dumps(rows))
    return path


@pytest.fixture(scope="module")
def twins(tmp_path_factory, tiny):
    root = tmp_path_factory.mktemp("twins")
    ds = mmau.load(_bench(root), root)
    calib, evals = mmau.by_split_field(ds.examples, "calib", "test")
    cache = run_capture(tiny, calib + evals, root / "capture", batch_size=8, data_sha=ds.sha256)
    return cache, calib, evals


def _cfg(**kw) -> EvalConfig:
    methods = ["baseline", "head-guided", "single-layer", "random-layer", "gated", "hint-projected"]
    return EvalConfig(methods=methods, k=4, k_sweep=[4], seeds=2, grid=[0.0, 1.0, 4.0], draws=10, **kw)


def _run(cache, calib, evals) -> tuple[Evaluator, drun.Discovery, list[dict]]:
    ev = Evaluator(cache, calib, evals, _cfg())
    disc = ev.run()
    return ev, disc, ev.table()


def _headline(rows: list[dict]) -> dict[str, tuple]:
    return {
        r["method"]: (r["accuracy"], r["n"], r.get("alpha"), r.get("layer"), str(r.get("calib_curve")))
        for r in rows
    }


def test_is_ablated_reads_the_condition_and_the_flag():
    ex = mmau.Example("a", "q", ("x", "y"), "x", frozenset({0}), "sound")
    assert not protocol.is_ablated(ex)
    for cond in protocol.ABLATION_CONDITIONS:
        ex.extra = {"condition": cond}
        assert protocol.is_ablated(ex)
    ex.extra = {"condition": "misleading"}
    assert not protocol.is_ablated(ex)
    ex.extra = {"condition": "neutral", protocol.ABLATION_FLAG: True}
    assert protocol.is_ablated(ex)


def test_silence_twins_do_not_reach_r_heads_alpha_or_headline(twins):
    cache, calib, evals = twins
    real_cal = [e for e in calib if e.extra["condition"] != "silence"]
    real_ev = [e for e in evals if e.extra["condition"] != "silence"]
    ev_all, disc_all, rows_all = _run(cache, calib, evals)
    ev_real, disc_real, rows_real = _run(cache, real_cal, real_ev)

    # D_cal and the evaluation items are the real-audio ones, whatever was passed in
    assert [e.id for e in ev_all.cal_ex] == [e.id for e in real_cal]
    assert [e.id for e in ev_all.ev_ex] == [e.id for e in real_ev]
    # r, S_K, the listening checks, every chosen alpha / layer and the headline numbers are identical
    np.testing.assert_array_equal(disc_all.r, disc_real.r)
    assert disc_all.heads == disc_real.heads
    assert disc_all.summary["check_i_auc"] == disc_real.summary["check_i_auc"]
    assert disc_all.summary["check_ii_flips"] == disc_real.summary["check_ii_flips"]
    assert _headline(rows_all) == _headline(rows_real)
    assert all(r["n"] == len(real_ev) for r in rows_all)

    # r equals an independent computation on the real-audio calibration rows only ...
    d_real = cache.load([e.id for e in real_cal])
    c_real = correctness(predictions(d_real["logits_a"]), [e.correct for e in real_cal])
    np.testing.assert_allclose(disc_all.r, point_biserial(d_real["mass_a"].numpy(), c_real), atol=1e-12)
    # ... and differs from the naive r that keeps the silence twins in D_cal
    d_all = cache.load([e.id for e in calib])
    c_all = correctness(predictions(d_all["logits_a"]), [e.correct for e in calib])
    assert not np.allclose(disc_all.r, point_biserial(d_all["mass_a"].numpy(), c_all))


def test_the_check_fails_when_the_protocol_is_switched_off(twins, monkeypatch):
    """With `is_ablated` patched to say "never", the silence twins reach D_cal and the headline: r, the
    curves and n change, so the equality test above would catch a leak."""
    cache, calib, evals = twins
    _, disc_ok, rows_ok = _run(cache, calib, evals)
    monkeypatch.setattr(protocol, "is_ablated", lambda e: False)
    monkeypatch.setattr(drun, "is_ablated", lambda e: False)
    ev_naive, disc_naive, rows_naive = _run(cache, calib, evals)
    assert len(ev_naive.cal_ex) == len(calib)
    assert not np.allclose(disc_ok.r, disc_naive.r)
    assert _headline(rows_ok) != _headline(rows_naive)
    assert rows_naive[0]["n"] == len(evals) != rows_ok[0]["n"]


def test_diagnostic_table_scores_the_silence_twins_at_the_chosen_configuration(twins):
    cache, calib, evals = twins
    ev, _, rows = _run(cache, calib, evals)
    sil = [e for e in evals if e.extra["condition"] == "silence"]
    assert [e.id for e in ev.diag_ex] == [e.id for e in sil]
    base = rows[0]
    assert "silence" not in base["by_condition"]
    d = cache.load([e.id for e in sil])
    pred = predictions(d["logits_a"])
    want = correctness(pred, [e.correct for e in sil]).mean()
    assert base["diagnostic"]["silence"]["accuracy"] == pytest.approx(want)
    assert base["diagnostic"]["silence"]["n"] == len(sil)
    follow = np.mean([e.choices[p] == e.extra["prior_choice"] for e, p in zip(sil, pred, strict=True)])
    assert base["diagnostic"]["silence"]["hint_followed"] == pytest.approx(follow)
    hg = next(r for r in rows if r["method"] == "head-guided")
    assert hg["diagnostic"]["silence"]["n"] == len(sil)
    # per-condition curves: every alpha, both splits, real-audio conditions only, with n
    cc = hg["condition_curves"]
    assert set(cc["calibration"]) == {"neutral", "misleading", "consistent"}
    assert all(len(v["accuracy"]) == 3 and v["n"] == 6 for v in cc["evaluation"].values())
    # the matched random-head control is compared against
    assert "mcnemar_vs_control" in hg and hg["vs_control_seeds"]["n_seeds"] == 2


def test_discovery_refuses_ablated_items_and_its_runner_drops_them(twins):
    cache, calib, evals = twins
    d_c, d_e = cache.load([e.id for e in calib]), cache.load([e.id for e in evals])
    with pytest.raises(SteerAudioError, match="ablated-audio"):
        drun.discover(d_c, d_e, calib, evals, 4)
    run = drun.run_discovery(cache, calib, evals, 4, draws=10)
    ev, disc, _ = _run(cache, calib, evals)
    np.testing.assert_array_equal(run.discovery.r, disc.r)
    assert run.discovery.summary["protocol"]["calibration"]["n_diagnostic_excluded"] == len(calib) // 4


def _brute_score(mass: np.ndarray, heads, r) -> np.ndarray:
    """s(x) written out: sum over the heads of r * mass, divided by sum |r|."""
    s = np.zeros(mass.shape[0])
    for (layer, h), w in zip(heads, r, strict=True):
        s += w * mass[:, layer, h]
    return s / sum(abs(w) for w in r)


def test_gated_steers_only_below_the_calibration_threshold_and_picks_the_best_cell(twins):
    from steer_audio.steer import cached
    from steer_audio.steer.methods.gated import GATE_QUANTILES

    cache, calib, evals = twins
    ev, disc, _ = _run(cache, calib, evals)
    g = next(r for r in ev.results if r.name == "gated")
    hs = disc.heads
    s_cal = _brute_score(ev.dc["mass_a"].numpy(), hs.heads, hs.r)
    s_ev = _brute_score(ev.de["mass_a"].numpy(), hs.heads, hs.r)

    def gated_correct(d, exs, s, tau, a):
        steered = predictions(cached.score(d, ev.ro, cached.head_guided_direction(d, hs), [a])[0])
        pred = np.where(s < tau, steered, predictions(d["logits_a"]))
        return pred, correctness(pred, [e.correct for e in exs])

    cells = []
    for j, q in enumerate(GATE_QUANTILES):
        tau = np.quantile(s_cal, q) if q < 1 else np.inf
        for i, a in enumerate(ev.cfg.alphas):
            cells.append(
                (gated_correct(ev.dc, ev.cal_ex, s_cal, tau, a)[1].mean(), -abs(a), -j, -i, q, a, tau)
            )
    best = max(cells)
    assert (g.params["gate_quantile"], g.params["alpha"]) == (best[4], best[5])
    pred, _ = gated_correct(ev.de, ev.ev_ex, s_ev, best[6], best[5])
    np.testing.assert_array_equal(g.pred, pred)
    assert g.params["steered_fraction_eval"] == pytest.approx(float((s_ev < best[6]).mean()))


def test_hint_projection_removes_the_calibration_hint_component(twins):
    import torch

    from steer_audio.steer import cached
    from steer_audio.steer.methods.hint import hint_direction, projected

    cache, calib, evals = twins
    ev, disc, _ = _run(cache, calib, evals)
    ctx_like = type("C", (), {"cal_ex": ev.cal_ex, "dc": ev.dc})()
    u = hint_direction(ctx_like, disc.heads)  # type: ignore[arg-type]
    # independent: mean over calibration bases of sum_l w_l (h^l(misleading) - h^l(neutral))
    want = torch.zeros_like(u)
    bases = sorted({e.id.rsplit("-", 1)[0] for e in ev.cal_ex})
    for b in bases:
        m, n = ev.dc.subset([f"{b}-misleading"]), ev.dc.subset([f"{b}-neutral"])
        for layer, w in disc.heads.layer_weights().items():
            want += w * (m["resid_a"][0, layer].float() - n["resid_a"][0, layer].float()) / len(bases)
    torch.testing.assert_close(u, want, rtol=1e-5, atol=1e-6)
    v = cached.head_guided_direction(ev.de, disc.heads)
    vp = projected(v, u)
    uh = u / u.norm()
    assert (vp @ uh).abs().max() < 1e-4 * v.norm(dim=-1).max()
    torch.testing.assert_close(v - vp, (v @ uh)[:, None] * uh[None, :])
    r = next(r for r in ev.results if r.name == "hint-projected")
    steered = cached.score(ev.de, ev.ro, vp, [r.params["alpha"]])[0]
    np.testing.assert_array_equal(r.pred, predictions(steered))


def test_discover_command_runs_its_own_runner_on_real_audio(twins, tmp_path, monkeypatch):
    """`steer-audio discover` goes through run_discovery, not the Evaluator, and finds the same heads."""
    from typer.testing import CliRunner

    from steer_audio.cli import app
    from steer_audio.evaluate import run as erun

    cache, calib, evals = twins
    _, disc, _ = _run(cache, calib, evals)

    def no_evaluator(*a, **k):
        raise AssertionError("discover must not construct the Evaluator")

    monkeypatch.setattr(erun.Evaluator, "__init__", no_evaluator)
    data = cache.root.parent / "bench.json"
    out = tmp_path / "disc"
    r = CliRunner().invoke(app, ["discover", "--model", "tiny", "--data", str(data), "--k", "4", "--draws", "10",
                                 "--out", str(out), "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    heads = json.loads((out / "heads.json").read_text())
    assert [(h["layer"], h["index"]) for h in heads["heads"]] == list(disc.heads.heads)
    s = json.loads((out / "summary.json").read_text())
    assert s["discovery"]["protocol"]["calibration"]["n_diagnostic_excluded"] == len(calib) // 4
    assert s["splits"]["n_calib_missing"] == 0
