"""NDIF API keys on the self-hosted stack: `NDIF_KEYS=1 deploy/ndif/start.sh` brings up the key database
(deploy/ndif/keys.sh, loopback only) and the API then verifies every request against it. A request without a
key is refused (401), one with a malformed key too (400), one with an unknown key too (403); one with a key
made by `keys.sh add` runs and equals the local run. Opt-in (``-m ndif``), root only, inside the test's
network namespace: ``scripts/test_ndif.sh tests/test_ndif_keys.py``."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import torch

from steer_audio.capture.inputs import encode
from steer_audio.data import mmau
from steer_audio.data.audio import load_audio
from steer_audio.remote import configure, resolve_remote, wait_until_ready

pytestmark = pytest.mark.ndif

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy" / "ndif"
NETNS = os.environ.get("NDIF_NETNS", "steeraudio-ndif-test")
STATE = Path(os.environ.get("NDIF_STATE_DIR", "/tmp/steeraudio-ndif-test")) / "keys"


def _in_netns(name: str) -> bool:
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat(f"/run/netns/{name}").st_ino
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def keyed_stack():
    """(url, a valid key) of a stack that requires keys; stopped afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root (ip netns)")
    if not (REPO / ".venv-ndif" / "bin" / "ray").exists():
        pytest.skip("server venv missing: run deploy/ndif/install.sh")
    if not _in_netns(NETNS):
        pytest.skip(f"run inside netns {NETNS}: scripts/test_ndif.sh")
    env = {**os.environ, "NDIF_NETNS": NETNS, "NDIF_STATE_DIR": str(STATE), "NDIF_PROFILE": "cpu"}
    try:
        proc = subprocess.run(
            [str(DEPLOY / "start.sh")],
            env={**env, "NDIF_KEYS": "1"},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"start.sh failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        url = proc.stdout.strip().splitlines()[-1]
        key = subprocess.run(
            [str(DEPLOY / "keys.sh"), "add", "tester@example.org", "--trusted"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.strip()
        uuid.UUID(key)
        wait_until_ready(resolve_remote(url, environ={}), timeout=60)
        yield url, key
    finally:
        subprocess.run(
            [str(DEPLOY / "stop.sh"), "--keep-netns"], env=env, capture_output=True, text=True, timeout=120
        )


def test_key_database_listens_on_loopback_only(keyed_stack) -> None:
    out = subprocess.run(["ss", "-Htln"], capture_output=True, text=True, check=True).stdout
    port = os.environ.get("NDIF_KEYS_PORT", "5433")
    addrs = [line.split()[3] for line in out.splitlines()]
    assert f"127.0.0.1:{port}" in addrs
    assert all(a.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:")) for a in addrs), addrs


def _trace(url: str, key: str | None, dataset_path: Path) -> torch.Tensor:
    from steer_audio.models import loaded

    target = resolve_remote(url, api_key=key, environ={})
    configure(target)
    m = loaded.load("tiny", device="cpu", remote=target.trace_arg)
    exs = mmau.load(dataset_path).examples[:2]
    b = encode(
        m.processor, exs, [load_audio(e.audio_path) for e in exs], None, m.prompt, m.geom.audio_token_id
    )
    with m.lm.trace(**b.model_inputs, remote=True):
        out = m.lm.lm_head.output[:, -1].save()
    return out


# nnsight's client reports the API's refusal by its message, not its status code (401 / 400 / 403 there)
@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (None, "Missing or invalid API key"),
        ("not-a-uuid", "Invalid API key format: 'not-a-uuid'"),
        (str(uuid.uuid4()), r"Invalid API key\.$"),
    ],
)
def test_request_without_a_valid_key_is_refused(keyed_stack, dataset_path, key, reason) -> None:
    url, _ = keyed_stack
    with pytest.raises(Exception, match=reason):
        _trace(url, key, dataset_path)


def test_request_with_a_valid_key_runs_and_equals_local(keyed_stack, dataset_path) -> None:
    from steer_audio.models import loaded

    url, key = keyed_stack
    t0 = time.monotonic()
    got = _trace(url, key, dataset_path)
    local = loaded.load("tiny", device="cpu")
    exs = mmau.load(dataset_path).examples[:2]
    b = encode(
        local.processor,
        exs,
        [load_audio(e.audio_path) for e in exs],
        None,
        local.prompt,
        local.geom.audio_token_id,
    )
    with local.lm.trace(**b.model_inputs):
        want = local.lm.lm_head.output[:, -1].save()
    assert torch.equal(got, want), f"after {time.monotonic() - t0:.0f} s"
