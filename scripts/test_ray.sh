#!/usr/bin/env bash
# Data-parallel capture on Ray (tests/test_ray_capture.py, marker `ray`): creates a loopback-only network
# namespace, runs the tests INSIDE it (each test module starts a local Ray with CPU replicas of the tiny model on
# 127.0.0.1 and shuts it down), then deletes the namespace. Ray puts some of its listeners on the host's external
# address whatever it is told, hence the namespace (as scripts/test_ndif.sh). Root only; installs the `ray` extra
# into .venv if it is missing. Usage: scripts/test_ray.sh [extra pytest args]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NETNS="${RAY_TEST_NETNS:-steeraudio-ray-test}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export RAY_USAGE_STATS_ENABLED=0 RAY_DISABLE_DOCKER_CPU_WARNING=1 GRPC_ENABLE_FORK_SUPPORT=0
# one torch thread per process on a small machine; Ray's temp dir short (its unix socket paths must stay < 107 chars)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 STEER_AUDIO_TORCH_THREADS=1
export RAY_TMPDIR="${RAY_TMPDIR:-/tmp/steeraudio-ray}"

[ "$(id -u)" = 0 ] || { echo "test_ray.sh: needs root (ip netns)" >&2; exit 1; }
PY="$REPO/.venv/bin/python"
if ! "$PY" -c 'import ray' 2>/dev/null; then
  mapfile -t RAY < <("$PY" -c 'import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["ray"]))' \
    "$REPO/pyproject.toml")
  echo "[test_ray] installing the ray extra: ${RAY[*]}" >&2
  "$PY" -m pip install --disable-pip-version-check -q "${RAY[@]}" numpy==2.4.6
fi

created=0
if ! ip netns list | grep -qw "$NETNS"; then
  ip netns add "$NETNS"
  created=1
fi
cleanup() {
  if [ $created = 1 ]; then ip netns del "$NETNS" 2>/dev/null || true; fi
}
trap cleanup EXIT
ip netns exec "$NETNS" ip link set lo up
mkdir -p "$RAY_TMPDIR"

cd "$REPO"
ip netns exec "$NETNS" "$PY" -m pytest -m ray tests/test_ray_capture.py -rA -p no:cacheprovider "$@"
