#!/usr/bin/env bash
# End-to-end NDIF integration test: creates a loopback-only network namespace, runs the `ndif`-marked tests
# INSIDE it (the test starts the stack with deploy/ndif/start.sh and stops it with stop.sh), then deletes
# the namespace. Root only. Usage: scripts/test_ndif.sh [extra pytest args]
# (No -v: nnsight turns on its debug mode when it sees -v in sys.argv.)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export NDIF_NETNS="${NDIF_NETNS:-steeraudio-ndif-test}"
export NDIF_STATE_DIR="${NDIF_STATE_DIR:-/tmp/steeraudio-ndif-test}"
export HF_HUB_OFFLINE=1

[ "$(id -u)" = 0 ] || { echo "test_ndif.sh: needs root (ip netns)" >&2; exit 1; }
[ -x "$REPO/.venv-ndif/bin/ray" ] || "$REPO/deploy/ndif/install.sh"

created=0
if ! ip netns list | grep -qw "$NDIF_NETNS"; then
  ip netns add "$NDIF_NETNS"
  created=1
fi
cleanup() {
  # the test's own finally stops the services; this only catches a killed pytest
  "$REPO/deploy/ndif/stop.sh" --keep-netns >/dev/null 2>&1 || true
  if [ $created = 1 ]; then ip netns del "$NDIF_NETNS" 2>/dev/null || true; fi
}
trap cleanup EXIT
ip netns exec "$NDIF_NETNS" ip link set lo up

cd "$REPO"
# the stack without keys (integration) and with the API-key database (keys); NDIF_TESTS picks others
read -r -a TESTS <<<"${NDIF_TESTS:-tests/test_ndif_integration.py tests/test_ndif_keys.py}"
ip netns exec "$NDIF_NETNS" "$REPO/.venv/bin/python" -m pytest -m ndif "${TESTS[@]}" -rA -p no:cacheprovider "$@"
