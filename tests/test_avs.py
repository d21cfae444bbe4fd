"""AVS (Adaptive Vector Steering) on the tiny model: alpha = 0 reproduces the baseline exactly, the nnsight
trace equals an independent plain-PyTorch forward-hook implementation, only position t changes, and the
schedule follows its band."""

from __future__ import annotations

import pytest
import torch

from steer_audio.capture.inputs import encode
from steer_audio.capture.run import run_capture
from steer_audio.capture.trace import envoys
from steer_audio.data import mmau
from steer_audio.data.audio import load_audio
from steer_audio.errors import SteerAudioError
from steer_audio.steer import avs, forward


def _setup(m, dataset_path, tmp_path, n=4):
    ds = mmau.load(dataset_path)
    exs = ds.examples[:n]
    data = run_capture(m, exs, tmp_path / "cap", batch_size=n).load([e.id for e in exs])
    wavs = [load_audio(e.audio_path) for e in exs]
    b = encode(m.processor, exs, wavs, None, m.prompt, m.geom.audio_token_id)
    return data, b


def _hook_reference(m, b, cand, v, alpha, schedule):
    """Plain PyTorch: forward hooks on every decoder layer replace the last position's output by
    (h + alpha s_l v_l) * ||h|| / ||h + alpha s_l v_l||; candidate logits from the full forward."""
    module = m.lm._module
    hooks = []

    def make(layer):
        def hook(mod, args, out):
            h = out[:, -1].double()
            hs = h + alpha * float(schedule[layer]) * v[:, layer].double()
            out = out.clone()
            out[:, -1] = (hs * h.norm(dim=-1, keepdim=True) / hs.norm(dim=-1, keepdim=True)).to(out.dtype)
            return out

        return hook

    for i, layer in enumerate(module.model.language_model.layers):
        hooks.append(layer.register_forward_hook(make(i)))
    try:
        with torch.no_grad():
            inputs = {k: x for k, x in b.model_inputs.items() if k != "position_ids"}
            logits = module(**inputs, use_cache=False).logits[:, -1].float()
    finally:
        for h in hooks:
            h.remove()
    valid = cand >= 0
    return logits.gather(1, cand.clamp(min=0)).masked_fill(~valid, float("-inf"))


def test_schedule_band_and_shape():
    s = avs.layer_schedule(32)
    assert s.shape == (32,)
    assert torch.equal(s[11:21], torch.ones(10))
    assert (s[:11] == 0.25).all() and (s[21:] == 0.25).all()
    s = avs.layer_schedule(4, band=(0.5, 1.0), inside=2.0, outside=0.0)
    assert s.tolist() == [0.0, 0.0, 2.0, 2.0]
    with pytest.raises(SteerAudioError, match="band"):
        avs.layer_schedule(4, band=(0.7, 0.2))


def test_avs_alpha_zero_is_the_baseline_exactly(tiny, dataset_path, tmp_path):
    data, b = _setup(tiny, dataset_path, tmp_path)
    ev = envoys(tiny.lm, tiny.arch, tiny.geom, tiny.name)
    v = avs.avs_vectors(data["resid_a"], data["resid_n"])
    sched = avs.layer_schedule(tiny.geom.n_layers)
    base = forward.forward_logits(tiny.lm, ev, b.model_inputs, data["cand"])
    got = avs.avs_logits(tiny.lm, ev, b.model_inputs, data["cand"], v, 0.0, sched)
    assert torch.equal(got, base)
    torch.testing.assert_close(got, data["logits_a"][:, : got.shape[1]], atol=1e-5, rtol=1e-5)


def test_avs_equals_plain_pytorch_hooks(tiny, dataset_path, tmp_path):
    data, b = _setup(tiny, dataset_path, tmp_path)
    ev = envoys(tiny.lm, tiny.arch, tiny.geom, tiny.name)
    v = avs.avs_vectors(data["resid_a"], data["resid_n"])
    sched = avs.layer_schedule(tiny.geom.n_layers)
    base = avs.avs_logits(tiny.lm, ev, b.model_inputs, data["cand"], v, 0.0, sched)
    got = avs.avs_sweep(tiny.lm, ev, b.model_inputs, data["cand"], v, [0.5, 3.0], sched)
    for i, a in enumerate((0.5, 3.0)):
        want = _hook_reference(tiny, b, data["cand"], v, a, sched)
        torch.testing.assert_close(got[i], want, atol=1e-5, rtol=1e-5)
        # the intervention does something (so this comparison can fail)
        assert not torch.allclose(got[i], base, atol=1e-4, rtol=0)


def test_avs_touches_only_position_t_and_keeps_norms(tiny, dataset_path, tmp_path):
    data, b = _setup(tiny, dataset_path, tmp_path)
    ev = envoys(tiny.lm, tiny.arch, tiny.geom, tiny.name)
    v = avs.avs_vectors(data["resid_a"], data["resid_n"])
    sched = avs.layer_schedule(tiny.geom.n_layers)
    n_layers = tiny.geom.n_layers

    def run(alpha):
        with tiny.lm.trace(**b.model_inputs, use_cache=False):
            before, after = [], []
            for i in range(n_layers):
                y = ev.layers[i].output
                before.append(y[:, -1].clone())
                y[:, -1] = avs.steer_residual(y[:, -1], alpha * float(sched[i]) * v[:, i])
                after.append(y.clone())
            before, after = before.save(), after.save()
        return before, after

    _, base = run(0.0)
    before, steered = run(2.0)
    for i in range(n_layers):
        torch.testing.assert_close(steered[i][:, :-1], base[i][:, :-1], atol=0, rtol=0)
        torch.testing.assert_close(
            steered[i][:, -1].norm(dim=-1), before[i].norm(dim=-1), atol=1e-4, rtol=1e-5
        )
        assert not torch.allclose(steered[i][:, -1], base[i][:, -1])


def test_avs_rejects_mismatched_shapes(tiny, dataset_path, tmp_path):
    data, b = _setup(tiny, dataset_path, tmp_path, n=2)
    ev = envoys(tiny.lm, tiny.arch, tiny.geom, tiny.name)
    v = avs.avs_vectors(data["resid_a"], data["resid_n"])
    with pytest.raises(SteerAudioError, match="schedule"):
        avs.avs_logits(tiny.lm, ev, b.model_inputs, data["cand"], v, 1.0, torch.ones(3))
    with pytest.raises(SteerAudioError, match="differ in shape"):
        avs.avs_vectors(data["resid_a"], data["resid_n"][:1])


def test_avs_remote_round_trip_equals_local(tiny, dataset_path, tmp_path):
    """The AVS trace survives nnsight's remote serialisation (remote='local') and gives identical logits."""
    from steer_audio.models import loaded
    from steer_audio.remote import LOCAL_SIMULATION

    data, b = _setup(tiny, dataset_path, tmp_path, n=2)
    remote = loaded.load("tiny", device="cpu", remote=LOCAL_SIMULATION)
    v = avs.avs_vectors(data["resid_a"], data["resid_n"])
    sched = avs.layer_schedule(tiny.geom.n_layers)
    ev_l = envoys(tiny.lm, tiny.arch, tiny.geom, tiny.name)
    ev_r = envoys(remote.lm, remote.arch, remote.geom, remote.name)
    want = avs.avs_logits(tiny.lm, ev_l, b.model_inputs, data["cand"], v, 2.0, sched)
    got = avs.avs_logits(
        remote.lm, ev_r, b.model_inputs, data["cand"], v, 2.0, sched, remote=LOCAL_SIMULATION
    )
    assert torch.equal(got, want)
