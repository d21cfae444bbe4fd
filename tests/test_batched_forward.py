"""Forward-pass methods batched across alphas and head sets (steer/forward.py, steer/avs.py,
steer/methods/batches.py) on the tiny model: the one-step-for-every-configuration decode equals one decode
step per configuration and a full forward per configuration (left-padded rows included); chunked steps equal
one step; head-level and avs sharing one batch loop (one prefix pass per batch) equal each method alone."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from steer_audio.capture.inputs import encode
from steer_audio.capture.run import run_capture
from steer_audio.capture.trace import envoys
from steer_audio.data import mmau
from steer_audio.data.audio import load_audio
from steer_audio.discover.heads import HeadSet
from steer_audio.steer import avs, forward
from steer_audio.steer.methods import avs as avs_method
from steer_audio.steer.methods import batches
from steer_audio.steer.methods import head_level as hl_method

HS1 = HeadSet(((0, 1), (2, 3), (2, 0), (3, 2)), (0.5, -0.4, 0.3, 0.2))
HS2 = HeadSet(((1, 5), (3, 0)), (0.6, 0.4))
ALPHAS = [0.0, 0.5, 2.0, 5.0]
TOL = {"atol": 2e-5, "rtol": 1e-4}


def _setup(m, dataset_path, tmp_path, n=4):
    exs = mmau.load(dataset_path).examples[:n]
    data = run_capture(m, exs, tmp_path / "cap", batch_size=n).load([e.id for e in exs])
    wavs = [load_audio(e.audio_path) for e in exs]
    b = encode(m.processor, exs, wavs, None, m.prompt, m.geom.audio_token_id)
    return exs, data, b


def test_head_level_batched_step_equals_one_step_per_config_and_full_forwards(tiny, dataset_path, tmp_path):
    _, data, b = _setup(tiny, dataset_path, tmp_path)
    assert not bool(b.model_inputs["attention_mask"].all())  # left padding is exercised
    ev = envoys(tiny.lm, tiny.arch, tiny.geom, tiny.name)
    L = tiny.geom.n_layers
    sets = [forward.head_delta(data["dz"], list(hs.heads), L) for hs in (HS1, HS2)]
    args = (tiny.lm, ev, b.model_inputs, data["cand"], sets, ALPHAS)
    batched = forward.head_level_logits(*args, batched=True)
    loop = forward.head_level_logits(*args, batched=False)
    full = forward.head_level_logits(*args, reuse_prefix=False)
    assert batched.shape == (2 * len(ALPHAS), 4, data["cand"].shape[1])
    torch.testing.assert_close(batched, loop, **TOL)
    torch.testing.assert_close(batched, full, **TOL)
    torch.testing.assert_close(batched[0], data["logits_a"][:, : batched.shape[2]], **TOL)  # alpha = 0
    assert not torch.allclose(batched[3], batched[len(ALPHAS) + 3])  # the two sets steer differently


def test_avs_batched_step_equals_one_full_forward_per_alpha(tiny, dataset_path, tmp_path):
    _, data, b = _setup(tiny, dataset_path, tmp_path)
    ev = envoys(tiny.lm, tiny.arch, tiny.geom, tiny.name)
    v = avs.avs_vectors(data["resid_a"], data["resid_n"])
    sched = avs.layer_schedule(tiny.geom.n_layers)
    got = avs.avs_sweep(tiny.lm, ev, b.model_inputs, data["cand"], v, ALPHAS, sched)
    want = torch.stack(
        [avs.avs_logits(tiny.lm, ev, b.model_inputs, data["cand"], v, a, sched) for a in ALPHAS]
    )
    torch.testing.assert_close(got, want, **TOL)
    assert not torch.allclose(got[0], got[-1])  # alpha really steers


def test_chunked_steps_equal_one_step(tiny, dataset_path, tmp_path, monkeypatch):
    _, data, b = _setup(tiny, dataset_path, tmp_path)
    ev = envoys(tiny.lm, tiny.arch, tiny.geom, tiny.name)
    L = tiny.geom.n_layers
    sets = [forward.head_delta(data["dz"], list(hs.heads), L) for hs in (HS1, HS2)]
    v = avs.avs_vectors(data["resid_a"], data["resid_n"])
    sched = avs.layer_schedule(L)
    one_hl = forward.head_level_logits(tiny.lm, ev, b.model_inputs, data["cand"], sets, ALPHAS)
    one_avs = avs.avs_sweep(tiny.lm, ev, b.model_inputs, data["cand"], v, ALPHAS, sched)
    monkeypatch.setattr(forward, "MAX_STEP_CONFIGS", 3)  # 8 configurations -> steps of 3, 3, 2
    torch.testing.assert_close(
        forward.head_level_logits(tiny.lm, ev, b.model_inputs, data["cand"], sets, ALPHAS), one_hl, **TOL
    )
    torch.testing.assert_close(
        avs.avs_sweep(tiny.lm, ev, b.model_inputs, data["cand"], v, ALPHAS, sched), one_avs, **TOL
    )


def test_shared_loop_runs_one_prefix_per_batch_and_equals_each_method_alone(
    tiny, dataset_path, tmp_path, monkeypatch
):
    exs, data, _ = _setup(tiny, dataset_path, tmp_path, n=6)
    cfg = SimpleNamespace(batch_size=4, reuse_prefix=True, methods=["head-level", "avs"], k=3, seed=0)
    disc = SimpleNamespace(
        heads=HS1, r=np.random.default_rng(0).standard_normal((tiny.geom.n_layers, tiny.geom.n_heads))
    )
    ctx = SimpleNamespace(model=tiny, cfg=cfg, memo={}, disc=disc)
    calls = []
    real = forward.prefix_pass
    monkeypatch.setattr(forward, "prefix_pass", lambda *a: calls.append(1) or real(*a))
    hl = batches.forward_curve(ctx, exs, data, hl_method._shared(ctx, ALPHAS), "head-level", ALPHAS)
    assert len(calls) == 2  # 6 examples in batches of 4: one prefix pass per batch serves both methods
    assert len(ctx.memo) == 1
    got_avs = batches.forward_curve(ctx, exs, data, avs_method._shared(ctx, ALPHAS), "avs", ALPHAS)
    assert len(calls) == 2 and not ctx.memo  # avs came from the shared loop
    alone = SimpleNamespace(**{**vars(ctx), "memo": {}})
    want_hl = batches.forward_curve(alone, exs, data, hl_method._shared(alone, ALPHAS))
    want_avs = batches.forward_curve(alone, exs, data, avs_method._shared(alone, ALPHAS))
    torch.testing.assert_close(hl, want_hl, **TOL)
    torch.testing.assert_close(got_avs, want_avs, **TOL)
    # and both equal one full forward per configuration (no prefix reuse at all)
    full = SimpleNamespace(
        **{**vars(ctx), "memo": {}, "cfg": SimpleNamespace(**{**vars(cfg), "reuse_prefix": False})}
    )
    torch.testing.assert_close(
        hl, batches.forward_curve(full, exs, data, hl_method._shared(full, ALPHAS)), **TOL
    )
    torch.testing.assert_close(
        got_avs, batches.forward_curve(full, exs, data, avs_method._shared(full, ALPHAS)), **TOL
    )


def test_batched_steps_under_eager_attention(tiny_eager, dataset_path, tmp_path):
    """The step's additive 4D mask is right for eager attention too (added to the scores, not a bool mask)."""
    _, data, b = _setup(tiny_eager, dataset_path, tmp_path)
    m = tiny_eager
    ev = envoys(m.lm, m.arch, m.geom, m.name)
    sets = [forward.head_delta(data["dz"], list(HS1.heads), m.geom.n_layers)]
    got = forward.head_level_logits(m.lm, ev, b.model_inputs, data["cand"], sets, ALPHAS)
    want = forward.head_level_logits(m.lm, ev, b.model_inputs, data["cand"], sets, ALPHAS, reuse_prefix=False)
    torch.testing.assert_close(got, want, **TOL)
    v = avs.avs_vectors(data["resid_a"], data["resid_n"])
    sched = avs.layer_schedule(m.geom.n_layers)
    got = avs.avs_sweep(m.lm, ev, b.model_inputs, data["cand"], v, ALPHAS, sched)
    want = avs.avs_sweep(m.lm, ev, b.model_inputs, data["cand"], v, ALPHAS, sched, reuse_prefix=False)
    torch.testing.assert_close(got, want, **TOL)


def test_forward_method_alpha_zero_is_the_baseline():
    """A forward-pass method's alpha = 0 row is the audio pass's own logits, not its decode step (which
    differs by kernel rounding in bfloat16): when calibration picks alpha = 0 the method scores exactly the
    baseline. The forward logits here disagree with the baseline at alpha = 0 on purpose."""
    from steer_audio.discover.heads import predictions
    from steer_audio.steer.methods.base import MethodContext
    from steer_audio.steer.methods.batches import curve_result

    gen = torch.Generator().manual_seed(0)
    n, o = 12, 4
    la_c, la_e = torch.randn(n, o, generator=gen), torch.randn(n, o, generator=gen)
    # every item's right answer is the baseline's own choice, so alpha = 0 is the calibration optimum
    cal_ex = [SimpleNamespace(correct=frozenset({int(p)})) for p in predictions(la_c)]
    ev_ex = [SimpleNamespace(correct=frozenset({int(p)})) for p in predictions(la_e)]
    drift = lambda x: x.roll(1, dims=-1)  # noqa: E731  (a forward "alpha = 0" that picks other options)
    cal_l = torch.stack([drift(la_c), drift(la_c)])
    ev_l = torch.stack([drift(la_e), drift(la_e)])
    ctx = SimpleNamespace(
        alphas=[0.0, 1.0], dc={"logits_a": la_c}, de={"logits_a": la_e}, cal_ex=cal_ex, ev_ex=ev_ex
    )
    ctx.correct = lambda pred, exs: MethodContext.correct(ctx, pred, exs)  # type: ignore[arg-type]
    ctx.curve = lambda lg, exs: MethodContext.curve(ctx, lg, exs)  # type: ignore[arg-type]
    res, i = curve_result(ctx, "m", {}, cal_l, ev_l)  # type: ignore[arg-type]
    assert i == 0 and res.params["alpha"] == 0.0
    assert np.array_equal(res.pred, predictions(la_e))
    assert res.cal_correct is not None and res.cal_correct[0].all() and not res.cal_correct[1].all()
