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
from ndif_stack import DEPLOY, LOOPBACK, listening_addresses, running_stack, skip_unless_runnable, stack_env
from ndif_stack import STATE as STATE_ROOT

from steer_audio.capture.inputs import encode
from steer_audio.data import mmau
from steer_audio.data.audio import load_audio
from steer_audio.remote import configure, resolve_remote, wait_until_ready

pytestmark = pytest.mark.ndif

STATE = STATE_ROOT / "keys"


@pytest.fixture(scope="module")
def keyed_stack():
    """(url, a valid key) of a stack that requires keys; stopped afterwards."""
    skip_unless_runnable()
    with running_stack(STATE, timeout=600, extra_env={"NDIF_KEYS": "1"}) as url:
        key = subprocess.run(
            [str(DEPLOY / "keys.sh"), "add", "tester@example.org", "--trusted"],
            env=stack_env(STATE),
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.strip()
        uuid.UUID(key)
        wait_until_ready(resolve_remote(url, environ={}), timeout=60)
        yield url, key


def test_key_database_listens_on_loopback_only(keyed_stack) -> None:
    port = os.environ.get("NDIF_KEYS_PORT", "5433")
    addrs = listening_addresses()
    assert f"127.0.0.1:{port}" in addrs
    assert all(a.startswith(LOOPBACK) for a in addrs), addrs


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
