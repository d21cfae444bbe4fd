"""Integration: the real self-hosted NDIF stack (redis, moto S3, Ray, NDIF API) in a loopback-only network
namespace, started and stopped by the project's own scripts (deploy/ndif/). `steer-audio discover --remote URL` on
the tiny model must write artifacts identical to the local run. Opt-in (``-m ndif``), root only, and the test process itself must
run inside the namespace: use ``scripts/test_ndif.sh``, which sets that up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
from ndif_stack import (
    LOOPBACK,
    REPO,
    STATE,
    listening_addresses,
    running_stack,
    skip_unless_runnable,
)

from steer_audio.capture.inputs import encode
from steer_audio.capture.trace import envoys
from steer_audio.data import mmau
from steer_audio.data.audio import load_audio, negative
from steer_audio.io import same_artifact
from steer_audio.remote import configure, resolve_remote, wait_until_ready
from steer_audio.steer import forward

pytestmark = pytest.mark.ndif


@pytest.fixture(scope="module")
def ndif_url():
    skip_unless_runnable()
    t0 = time.monotonic()
    with running_stack(STATE, timeout=420, check_stopped=True) as url:
        target = resolve_remote(url, environ={})
        wait_until_ready(target, timeout=60)
        (STATE / "deploy_seconds").write_text(f"{time.monotonic() - t0:.1f}\n")
        yield url


def _load_pair(url: str):
    from steer_audio.models import loaded

    target = resolve_remote(url, environ={})
    configure(target)
    return loaded.load("tiny", device="cpu"), loaded.load("tiny", device="cpu", remote=target.trace_arg)


def test_server_listens_on_loopback_only(ndif_url):
    addrs = listening_addresses()
    assert addrs, "nothing listens"
    bad = [a for a in addrs if not a.startswith(LOOPBACK)]
    assert not bad, bad


def test_remote_steering_equals_local(ndif_url, dataset_path):
    local, remote = _load_pair(ndif_url)
    exs = mmau.load(dataset_path).examples[:3]
    wavs = [load_audio(e.audio_path) for e in exs]
    negs = [negative(w, "silence", seed=0) for w in wavs]
    b = encode(local.processor, exs, wavs, negs, local.prompt, local.geom.audio_token_id)
    g = torch.Generator().manual_seed(0)
    n, d = b.cand.shape[0], local.geom.n_heads * local.geom.head_dim
    attn_add = {1: torch.randn(n, d, generator=g)}
    final_add = torch.randn(n, d, generator=g)
    cand = b.cand.masked_fill(~b.cand_valid, -1)
    want = forward.forward_logits(
        local.lm,
        envoys(local.lm, local.arch, local.geom, local.name),
        b.model_inputs,
        cand,
        attn_add,
        final_add,
    )
    ev_r = envoys(remote.lm, remote.arch, remote.geom, remote.name)
    got = forward.forward_logits(remote.lm, ev_r, b.model_inputs, cand, attn_add, final_add, remote=ndif_url)
    assert torch.equal(got, want)


def test_status_updates_reach_the_callback(ndif_url, dataset_path):
    """trace_kwargs(): queue state goes to a callback (the progress bar), not to stdout; result equals local."""
    from steer_audio.remote import trace_kwargs

    local, remote = _load_pair(ndif_url)
    exs = mmau.load(dataset_path).examples[:2]
    b = encode(
        local.processor,
        exs,
        [load_audio(e.audio_path) for e in exs],
        None,
        local.prompt,
        local.geom.audio_token_id,
    )
    seen: list[str] = []
    with remote.lm.trace(
        **b.model_inputs, **trace_kwargs(remote.lm, resolve_remote(ndif_url), lambda s, d: seen.append(s))
    ):
        got = remote.lm.lm_head.output[:, -1].save()
    with local.lm.trace(**b.model_inputs):
        want = local.lm.lm_head.output[:, -1].save()
    assert torch.equal(got, want)
    assert "QUEUED" in seen and seen[-1] == "COMPLETED"


def _cli(stage: str, out: Path, data: Path, remote: str | None, *extra: str) -> subprocess.CompletedProcess:
    cmd = [str(REPO / ".venv" / "bin" / "steer-audio"), stage, "--model", "tiny", "--data", str(data)]
    # a remote run sends the plain inputs (the server encodes on the full window): compare like with like
    cmd += [
        "--out",
        str(out),
        "--device",
        "cpu",
        "--batch-size",
        "8",
        "--audio-encoder",
        "full-window",
        *extra,
    ]
    if remote:
        cmd += ["--remote", remote]
    env = {k: v for k, v in os.environ.items() if k not in ("NDIF_HOST", "NDIF_API_KEY")}
    env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


#: run-specific fields: where the run lives, whether it ran remotely, when, with which command
VOLATILE = {"meta.json"}


def _normalised_summary(path: Path) -> dict:
    s = json.loads(path.read_text())
    s.pop("run_dir", None)
    s.get("model", {}).pop("remote", None)
    return s


def test_remote_discover_artifacts_identical(ndif_url, tmp_path):
    """`steer-audio discover --remote URL` on the tiny model writes the same artifacts as the local run."""
    from steer_audio.data.demo import write_demo

    data = write_demo(tmp_path / "demo")  # 120 items: fewer can leave the calibration split one-class
    runs = {}
    for name, remote in (("local", None), ("remote", ndif_url)):
        proc = _cli("discover", tmp_path / name, data, remote, "--draws", "20")
        assert proc.returncode == 0, f"{name} discover failed:\n{proc.stderr[-4000:]}"
        runs[name] = tmp_path / name
    _assert_same_runs(runs["local"], runs["remote"])
    keep = os.environ.get("STEER_AUDIO_KEEP_ARTIFACTS")
    if keep:
        shutil.copytree(tmp_path, keep, dirs_exist_ok=True)


def _assert_same_runs(local: Path, remote: Path) -> None:
    runs = {"local": local, "remote": remote}
    files = sorted(str(p.relative_to(runs["local"])) for p in runs["local"].rglob("*") if p.is_file())
    assert files == sorted(
        str(p.relative_to(runs["remote"])) for p in runs["remote"].rglob("*") if p.is_file()
    )
    assert any(f.startswith("capture/") for f in files) and "heads.json" in files
    compared = 0
    for rel in files:
        a, b = runs["local"] / rel, runs["remote"] / rel
        if rel in VOLATILE:
            continue
        if rel == "summary.json":
            assert _normalised_summary(a) == _normalised_summary(b)
        else:
            assert same_artifact(a, b), rel
        compared += 1
    assert compared >= 5


def test_remote_evaluate_head_level_identical(ndif_url, tmp_path):
    """`steer-audio evaluate --remote URL` with head-level steering (forward passes on the server) writes the
    same predictions, report and artifacts as the local run."""
    from steer_audio.data.demo import write_demo

    data = write_demo(tmp_path / "demo")
    extra = ("--method", "baseline", "--method", "head-level", "--grid", "0,2", "--seeds", "1")
    extra += ("--no-controls", "--limit", "16")
    for name, remote in (("local", None), ("remote", ndif_url)):
        proc = _cli("evaluate", tmp_path / name, data, remote, *extra)
        assert proc.returncode == 0, f"{name} evaluate failed:\n{proc.stderr[-4000:]}"
    assert (tmp_path / "local" / "predictions.jsonl").exists()
    _assert_same_runs(tmp_path / "local", tmp_path / "remote")
