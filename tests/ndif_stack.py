"""The self-hosted NDIF stack for the `ndif`-marked tests (test_ndif_integration.py, test_ndif_keys.py): where
it lives, the skips when it cannot run here, and its start / stop by the project's own scripts (deploy/ndif/).
The artifact comparison the remote tests share is `steer_audio.io.same_artifact`."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy" / "ndif"
NETNS = os.environ.get("NDIF_NETNS", "steeraudio-ndif-test")
STATE = Path(os.environ.get("NDIF_STATE_DIR", "/tmp/steeraudio-ndif-test"))
SERVICES = ("redis", "s3", "ray", "api")
LOOPBACK = ("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:")


def in_netns(name: str) -> bool:
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat(f"/run/netns/{name}").st_ino
    except FileNotFoundError:
        return False


def sessions_alive(sids: list[int]) -> list[int]:
    out = subprocess.run(
        ["ps", "-e", "-o", "pid=,sid=,stat="], capture_output=True, text=True, check=True
    ).stdout
    rows = (line.split() for line in out.splitlines())
    return [int(p) for p, s, st in rows if int(s) in sids and not st.startswith("Z")]


def skip_unless_runnable() -> None:
    """Root, the server venv and this process inside the test's network namespace (scripts/test_ndif.sh)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (ip netns)")
    if not (REPO / ".venv-ndif" / "bin" / "ray").exists():
        pytest.skip("server venv missing: run deploy/ndif/install.sh")
    if not in_netns(NETNS):
        pytest.skip(f"run inside netns {NETNS}: scripts/test_ndif.sh")


def stack_env(state: Path) -> dict[str, str]:
    return {**os.environ, "NDIF_NETNS": NETNS, "NDIF_STATE_DIR": str(state), "NDIF_PROFILE": "cpu"}


@contextmanager
def running_stack(
    state: Path, timeout: int, extra_env: dict[str, str] | None = None, check_stopped: bool = False
) -> Iterator[str]:
    """deploy/ndif/start.sh (its last stdout line is the URL), then stop.sh --keep-netns whatever happens;
    `check_stopped`: also assert that every process of the sessions start.sh recorded is gone."""
    env = stack_env(state)
    sids: list[int] = []
    try:
        proc = subprocess.run(
            [str(DEPLOY / "start.sh")],
            env={**env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        sids = [int((state / "pids" / s).read_text()) for s in SERVICES if (state / "pids" / s).exists()]
        if proc.returncode != 0:
            raise RuntimeError(f"start.sh failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        yield proc.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(
            [str(DEPLOY / "stop.sh"), "--keep-netns"], env=env, capture_output=True, text=True, timeout=120
        )
        if check_stopped:
            # every process the scripts started (all members of the recorded sessions) is gone
            left = sessions_alive(sids)
            assert not left, f"processes left after stop.sh: {left}"


def listening_addresses() -> list[str]:
    out = subprocess.run(["ss", "-Htln"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines()]
