"""Steering invariants on the tiny model: cached scoring equals a real nnsight forward with the intervention;
alpha = 0 is a no-op; only position t changes; head-level steering of one head changes only that head's
contribution; prefix-KV reuse equals a full forward."""

from __future__ import annotations

import torch

from steer_audio.capture.inputs import encode
from steer_audio.capture.run import run_capture
from steer_audio.capture.trace import envoys
from steer_audio.data import mmau
from steer_audio.data.audio import load_audio
from steer_audio.discover.heads import HeadSet
from steer_audio.steer import cached, forward


def _setup(m, dataset_path, tmp_path, n=4):
    ds = mmau.load(dataset_path)
    exs = ds.examples[:n]
    cache = run_capture(m, exs, tmp_path / "cap", batch_size=n)
    data = cache.load([e.id for e in exs])
    wavs = [load_audio(e.audio_path) for e in exs]
    b = encode(m.processor, exs, wavs, None, m.prompt, m.geom.audio_token_id)
    return exs, cache, data, b


HS = HeadSet(((0, 1), (2, 3), (2, 0), (3, 2)), (0.5, -0.4, 0.3, 0.2))


def test_cached_alpha_zero_is_the_baseline(tiny, dataset_path, tmp_path):
    _, cache, data, _ = _setup(tiny, dataset_path, tmp_path)
    ro = cache.readout()
    lg = cached.score(data, ro, cached.head_guided_direction(data, HS), [0.0, 1.0])
    assert torch.equal(lg[0], data["logits_a"].float())  # alpha = 0 is the audio pass's own logits
    # and the readout that scores every other alpha reproduces them from h^L (final norm + lm_head rows)
    h = data["resid_a"][:, -1].float()
    torch.testing.assert_close(cached.readout_logits(data, ro, h), data["logits_a"], atol=1e-5, rtol=1e-5)
    assert not torch.equal(lg[1], lg[0])


def test_cached_scoring_equals_real_forward(tiny, dataset_path, tmp_path):
    _, cache, data, b = _setup(tiny, dataset_path, tmp_path)
    ev = envoys(tiny.lm, tiny.arch, tiny.geom, tiny.name)
    v = cached.head_guided_direction(data, HS)
    for a in (1.0, 4.0):
        want = forward.forward_logits(tiny.lm, ev, b.model_inputs, data["cand"], final_add=a * v)
        got = cached.score(data, cache.readout(), v, [a])[0]
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_weights_follow_specialist_density():
    w = HS.layer_weights()
    assert w == {0: 0.25, 2: 0.5, 3: 0.25}
    assert abs(sum(w.values()) - 1) < 1e-12


def test_steering_touches_only_position_t(tiny, dataset_path, tmp_path):
    _, _, data, b = _setup(tiny, dataset_path, tmp_path)
    ev = envoys(tiny.lm, tiny.arch, tiny.geom, tiny.name)
    deltas = forward.head_delta(data["dz"], list(HS.heads), tiny.geom.n_layers)
    last = tiny.geom.n_layers - 1

    def run(add):
        with tiny.lm.trace(**b.model_inputs, use_cache=False):
            outs = []
            for i in range(tiny.geom.n_layers):
                if i in add:
                    ev.o_proj[i].input[:, -1] += add[i]
                outs.append(ev.layers[i].output.clone())
            outs = outs.save()
        return outs

    base = run({})
    steered = run({k: 3.0 * v for k, v in deltas.items()})
    first = min(deltas)
    for i in range(tiny.geom.n_layers):
        torch.testing.assert_close(steered[i][:, :-1], base[i][:, :-1], atol=0, rtol=0)
        if i >= first:
            assert not torch.allclose(steered[i][:, -1], base[i][:, -1])
    assert last >= first


def test_head_level_one_head_changes_only_its_slice(tiny, dataset_path, tmp_path):
    _, _, data, b = _setup(tiny, dataset_path, tmp_path)
    ev = envoys(tiny.lm, tiny.arch, tiny.geom, tiny.name)
    layer, head = 2, 1
    deltas = forward.head_delta(data["dz"], [(layer, head)], tiny.geom.n_layers)
    dh = tiny.geom.head_dim

    def o_in(add):
        with tiny.lm.trace(**b.model_inputs, use_cache=False):
            if add is not None:
                ev.o_proj[layer].input[:, -1] += add
            x = ev.o_proj[layer].input.clone().save()
            y = ev.o_proj[layer].output.save()
        return x, y

    x0, y0 = o_in(None)
    x1, y1 = o_in(2.0 * deltas[layer])
    diff = (x1 - x0)[:, -1]
    assert (
        torch.count_nonzero(diff[:, : head * dh]) == 0
        and torch.count_nonzero(diff[:, (head + 1) * dh :]) == 0
    )
    torch.testing.assert_close(diff[:, head * dh : (head + 1) * dh], 2.0 * data["dz"][:, layer, head])
    # the residual moves by alpha * W_O[:, h] dz^{l,h} (Eq. 8)
    w_o = tiny.lm._module.model.language_model.layers[layer].self_attn.o_proj.weight
    u = data["dz"][:, layer, head] @ w_o[:, head * dh : (head + 1) * dh].T
    torch.testing.assert_close((y1 - y0)[:, -1], 2.0 * u, atol=1e-5, rtol=1e-4)


def test_head_level_prefix_reuse_equals_full_forward(tiny, dataset_path, tmp_path):
    _, _, data, b = _setup(tiny, dataset_path, tmp_path)
    ev = envoys(tiny.lm, tiny.arch, tiny.geom, tiny.name)
    deltas = forward.head_delta(data["dz"], list(HS.heads), tiny.geom.n_layers)
    alphas = [0.0, 2.0, 5.0]
    fast = forward.head_level_logits(
        tiny.lm, ev, b.model_inputs, data["cand"], deltas, alphas, reuse_prefix=True
    )
    slow = forward.head_level_logits(
        tiny.lm, ev, b.model_inputs, data["cand"], deltas, alphas, reuse_prefix=False
    )
    torch.testing.assert_close(fast, slow, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(fast[0], data["logits_a"], atol=2e-5, rtol=1e-4)


def test_head_level_sets_share_one_prefix(tiny, dataset_path, tmp_path):
    """Several head sets through one prefix pass give each set's own curve, in set-major order."""
    _, _, data, b = _setup(tiny, dataset_path, tmp_path)
    ev = envoys(tiny.lm, tiny.arch, tiny.geom, tiny.name)
    L = tiny.geom.n_layers
    d1 = forward.head_delta(data["dz"], list(HS.heads), L)
    d2 = forward.head_delta(data["dz"], [(0, 1), (L - 1, 0)], L)
    alphas = [0.0, 3.0]
    both = forward.head_level_logits(tiny.lm, ev, b.model_inputs, data["cand"], [d1, d2], alphas)
    one = forward.head_level_logits(tiny.lm, ev, b.model_inputs, data["cand"], d1, alphas)
    two = forward.head_level_logits(tiny.lm, ev, b.model_inputs, data["cand"], d2, alphas)
    torch.testing.assert_close(both, torch.cat([one, two]), atol=2e-5, rtol=1e-4)
    assert not torch.allclose(one[1], two[1])  # the two sets really steer differently
