"""Every trace the toolkit uses survives nnsight's remote serialisation round trip and gives the local result.

``remote="local"`` serialises the trace exactly as for an NDIF server, deserialises it with the user's own
modules hidden (as on a server without them) and runs it in this process against the wrapper's own model, built
from the offline model key. Results must equal a plain local run bit for bit. No services are needed.
"""

from __future__ import annotations

import importlib
import json
import sys

import nnsight
import numpy as np
import pytest
import torch

from steer_audio.capture.inputs import encode
from steer_audio.capture.run import run_capture
from steer_audio.capture.trace import envoys
from steer_audio.data import mmau
from steer_audio.data.audio import load_audio, negative
from steer_audio.io import same_artifact
from steer_audio.remote import (
    LOCAL_SIMULATION,
    RemoteConfigError,
    RemoteTarget,
    configure,
    resolve_remote,
)
from steer_audio.steer import forward


@pytest.fixture(scope="module")
def local_tiny():
    from steer_audio.models import loaded

    return loaded.load("tiny", device="cpu")


@pytest.fixture
def pair(local_tiny):
    """The tiny model twice: built locally, and as the meta skeleton a remote client holds (key only).
    The remote one is fresh per test: `.source` instrumentation is permanent and must not leak between tests."""
    from steer_audio.models import loaded

    return local_tiny, loaded.load("tiny", device="cpu", remote=LOCAL_SIMULATION)


@pytest.fixture(scope="module")
def batch(local_tiny, dataset_path):
    """One capture batch: 3 examples -> 6 rows (audio, then silence), left padded."""
    local = local_tiny
    exs = mmau.load(dataset_path).examples[:3]
    wavs = [load_audio(e.audio_path) for e in exs]
    negs = [negative(w, "silence", seed=0) for w in wavs]
    return encode(local.processor, exs, wavs, negs, local.prompt, local.geom.audio_token_id)


def test_model_key_is_offline_and_round_trips(pair):
    local, remote = pair
    key = remote.lm.to_model_key()
    assert key == local.lm.to_model_key()
    path, payload = key.split(":", 1)
    assert path == "steer_audio.models.wrapper.AudioLM"
    assert json.loads(payload) == remote.spec  # no hub lookup: the key is the spec
    # what a server does with the key (nnsight 0.8.0 on the server also passes trust_remote_code)
    rebuilt = type(remote.lm).from_model_key(key, dispatch=False, trust_remote_code=False)
    assert rebuilt.to_model_key() == key
    from steer_audio.remote import model_key_for

    assert model_key_for("tiny") == key  # what an operator puts in NDIF_DEPLOYMENTS
    assert '"revision": "abc"' in model_key_for("qwen2-audio", revision="abc")


def _capture_in_trace(lm, ev_attn, rope_op, o_proj, layers, lm_head, inputs, remote):
    """The capture pattern with `.source` resolved INSIDE the trace (required for remote execution)."""
    with lm.trace(**inputs, use_cache=False, remote=remote):
        q_last, z, resid = [], [], []
        for i in range(len(layers)):
            q, k = getattr(ev_attn[i].source, rope_op).output
            q_last.append(q[:, :, -1])
            z.append(o_proj[i].input[:, -1])
            resid.append(layers[i].output[:, -1])
        out = {
            "q": torch.stack(q_last, 1),
            "z": torch.stack(z, 1),
            "resid": torch.stack(resid, 1),
            "logits": lm_head.output[:, -1],
        }
        out = out.save()
    return out


def _envoy_lists(m):
    lm = m.lm
    layers = [lm.model.language_model.layers[i] for i in range(m.geom.n_layers)]
    return lm, [la.self_attn for la in layers], [la.self_attn.o_proj for la in layers], layers, lm.lm_head


def test_capture_pattern_round_trip_equals_local(pair, batch):
    local, remote = pair
    lm_l, attn_l, o_l, layers_l, head_l = _envoy_lists(local)
    lm_r, attn_r, o_r, layers_r, head_r = _envoy_lists(remote)
    want = _capture_in_trace(
        lm_l, attn_l, "apply_rotary_pos_emb_0", o_l, layers_l, head_l, batch.model_inputs, False
    )
    got = _capture_in_trace(
        lm_r, attn_r, "apply_rotary_pos_emb_0", o_r, layers_r, head_r, batch.model_inputs, LOCAL_SIMULATION
    )
    assert set(got) == set(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k


def test_only_saved_values_come_back(pair, batch):
    """Remote semantics: a container created outside the trace is not filled by a remote run."""
    _, remote = pair
    outside: list[torch.Tensor] = []
    with remote.lm.trace(**batch.model_inputs, use_cache=False, remote=LOCAL_SIMULATION):
        inside = nnsight.save([])
        inside.append(remote.lm.lm_head.output[:, -1])
    assert len(inside) == 1
    assert outside == []


def test_capture_stage_round_trip_equals_local(pair, dataset_path, tmp_path):
    """The toolkit's capture stage (capture_trace) with remote='local' writes the same cache bytes. Run on a
    fresh remote model: `.source` must be resolved inside the trace (capture.trace.SourceOps) for this to pass."""
    local, remote = pair
    exs = mmau.load(dataset_path).examples[:4]
    run_capture(local, exs, tmp_path / "local", batch_size=2)
    run_capture(remote, exs, tmp_path / "remote", batch_size=2)
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "remote").iterdir())
    for name in names:
        assert same_artifact(tmp_path / "local" / name, tmp_path / "remote" / name), name


def test_steering_trace_round_trip_equals_local(pair, batch):
    """The toolkit's steering forward (o_proj-input and final-layer additions at t) gives identical logits."""
    local, remote = pair
    g = torch.Generator().manual_seed(0)
    n, d = batch.cand.shape[0], local.geom.n_heads * local.geom.head_dim
    attn_add = {1: torch.randn(n, d, generator=g), 3: torch.randn(n, d, generator=g)}
    final_add = torch.randn(n, d, generator=g)
    cand = batch.cand.masked_fill(~batch.cand_valid, -1)
    ev_l = envoys(local.lm, local.arch, local.geom, local.name)
    ev_r = envoys(remote.lm, remote.arch, remote.geom, remote.name)
    want = forward.forward_logits(local.lm, ev_l, batch.model_inputs, cand, attn_add, final_add)
    got = forward.forward_logits(
        remote.lm, ev_r, batch.model_inputs, cand, attn_add, final_add, remote=LOCAL_SIMULATION
    )
    base = forward.forward_logits(local.lm, ev_l, batch.model_inputs, cand)
    assert torch.equal(got, want)
    assert not torch.equal(want, base)  # the steering did something


def test_two_invokes_batch_on_the_remote_side(pair, batch):
    """Several invokes are merged by the wrapper's _batch (left padding) after deserialisation too."""
    local, remote = pair
    inputs = batch.model_inputs
    a = {k: v[:2] for k, v in inputs.items()}
    b = {k: v[2:3] for k, v in inputs.items()}

    def run(m, r):
        with m.lm.trace(remote=r) as tracer:
            with tracer.invoke(**a, use_cache=False):
                la = m.lm.lm_head.output[:, -1].save()
            with tracer.invoke(**b, use_cache=False):
                lb = m.lm.lm_head.output[:, -1].save()
        return la, lb

    want, got = run(local, False), run(remote, LOCAL_SIMULATION)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


# -- client configuration ------------------------------------------------------------------------------------


def test_resolve_remote_explicit_env_and_off():
    env = {"NDIF_HOST": "http://127.0.0.1:8001/", "NDIF_API_KEY": "k-123"}
    assert resolve_remote(None, environ={}) == RemoteTarget(None, None)
    assert resolve_remote(None, environ=env) == RemoteTarget("http://127.0.0.1:8001", "k-123")
    assert resolve_remote("https://ndif.lab:443", environ=env).url == "https://ndif.lab:443"
    assert resolve_remote("http://h:1", api_key="explicit", environ=env).api_key == "explicit"
    assert resolve_remote(False, environ=env) == RemoteTarget(None, None)
    assert resolve_remote("local", environ=env) == RemoteTarget("local", None)
    assert resolve_remote("local").trace_arg == "local"
    assert resolve_remote(None, environ={}).trace_arg is False
    t = resolve_remote(None, environ=env)
    assert t.trace_arg == "http://127.0.0.1:8001" and t.is_server
    assert "k-123" not in json.dumps(t.describe())


@pytest.mark.parametrize("bad", ["127.0.0.1:8001", "ftp://h", "http://h:1/api", "http://", "lokal"])
def test_resolve_remote_rejects_bad_urls(bad):
    with pytest.raises(RemoteConfigError):
        resolve_remote(bad, environ={})


def test_resolve_remote_true_needs_host():
    with pytest.raises(RemoteConfigError):
        resolve_remote(True, environ={})


def test_configure_sets_host_and_key_and_quiets_stdout():
    from nnsight import CONFIG

    old = (CONFIG.API.HOST, CONFIG.API.APIKEY, CONFIG.APP.REMOTE_LOGGING)
    try:
        configure(RemoteTarget("http://127.0.0.1:8001", "k-1"))
        assert (CONFIG.API.HOST, CONFIG.API.APIKEY, CONFIG.APP.REMOTE_LOGGING) == (
            "http://127.0.0.1:8001",
            "k-1",
            False,
        )
    finally:
        CONFIG.API.HOST, CONFIG.API.APIKEY, CONFIG.APP.REMOTE_LOGGING = old


def test_api_key_travels_in_the_request_header():
    from nnsight.intervention.backends.remote import RemoteBackend

    backend = RemoteBackend("x:{}", host="http://127.0.0.1:8001", api_key="k-2")
    assert backend.api_key == "k-2"  # sent as the `ndif-api-key` header on /request, /subscribe and polls


def test_trace_kwargs_and_status_backend(pair):
    from nnsight.schema.response import ResponseModel, Status

    from steer_audio.remote import status_backend, trace_kwargs

    _, remote = pair
    assert trace_kwargs(remote.lm, RemoteTarget()) == {}
    assert trace_kwargs(remote.lm, RemoteTarget("local")) == {"remote": "local"}
    seen: list[tuple[str, str]] = []
    kw = trace_kwargs(
        remote.lm, RemoteTarget("http://127.0.0.1:8001", "k-3"), lambda s, d: seen.append((s, d))
    )
    backend = kw["backend"]
    assert backend.model_key == remote.lm.to_model_key() and backend.api_key == "k-3"
    assert backend.host == "http://127.0.0.1:8001" and not backend.display.enabled
    assert (
        backend.note(ResponseModel(id="j", status=Status.QUEUED, description="Added to Queue at position 2"))
        is False
    )
    assert backend.note(ResponseModel(id="j", status=Status.COMPLETED, description="done")) is True
    assert seen == [("QUEUED", "Added to Queue at position 2"), ("COMPLETED", "done")]
    with pytest.raises(RemoteConfigError):
        status_backend(remote.lm, RemoteTarget("local"))


def test_client_does_not_import_server_packages():
    for name in [m for m in sys.modules if m.startswith("steer_audio.remote")]:
        del sys.modules[name]
    importlib.import_module("steer_audio.remote")
    assert "ray" not in sys.modules and "ndif" not in sys.modules


def test_audio_mass_masks_follow_the_scores_device():
    """In a remote trace the key and audio masks are built on the client (CPU) while q and k live on the
    server's device (a CUDA server refused CPU masks on 2026-12-02). The mass function moves them; 'meta'
    stands in for the other device here. On one device it equals a numpy softmax over the visible keys."""
    from steer_audio.capture.trace import last_row_audio_mass

    g = torch.Generator().manual_seed(0)
    n, h, kv, s, d = 2, 4, 2, 7, 8
    q, k = torch.randn(n, h, s, d, generator=g), torch.randn(n, kv, s, d, generator=g)
    key_mask = torch.ones(n, s, dtype=torch.bool)
    key_mask[1, :2] = False  # left padding on row 1
    audio_mask = torch.zeros(n, s, dtype=torch.bool)
    audio_mask[:, 2:5] = True
    out = last_row_audio_mass(q.to("meta"), k.to("meta"), key_mask, audio_mask, 0.5)
    assert out.device.type == "meta" and out.shape == (n, h)
    got = last_row_audio_mass(q, k, key_mask, audio_mask, 0.5).numpy()
    qn, kn = q.numpy().astype(np.float64), np.repeat(k.numpy().astype(np.float64), h // kv, axis=1)
    for i in range(n):
        for j in range(h):
            sc = kn[i, j] @ qn[i, j, -1] * 0.5
            sc[~key_mask[i].numpy()] = -np.inf
            p = np.exp(sc - sc.max())
            p /= p.sum()
            assert abs(got[i, j] - p[audio_mask[i].numpy()].sum()) < 1e-5


def test_audio_mass_stays_float32_under_a_servers_autocast():
    """An NDIF server runs each request under torch.autocast(bfloat16) (ndif's modeling/nns.py); on the H200
    the remote masses then differed from the local ones by ~0.005 while every bf16 tensor was identical. The mass
    must come out the same under autocast as without it (autocast on the CPU casts matmuls the same way)."""
    from steer_audio.capture.trace import last_row_audio_mass

    g = torch.Generator().manual_seed(1)
    n, h, s, d = 2, 4, 50, 64
    q, k = torch.randn(n, h, s, d, generator=g) * 3, torch.randn(n, h, s, d, generator=g) * 3
    key_mask = torch.ones(n, s, dtype=torch.bool)
    audio_mask = torch.zeros(n, s, dtype=torch.bool)
    audio_mask[:, 10:30] = True
    plain = last_row_audio_mass(q, k, key_mask, audio_mask, d**-0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = last_row_audio_mass(q, k, key_mask, audio_mask, d**-0.5)
    assert cast.dtype == torch.float32
    torch.testing.assert_close(cast, plain, atol=1e-6, rtol=1e-6)
