#!/usr/bin/env bash
# Show what start.sh started: each recorded service (alive or not, process count in its session), the listening
# sockets inside the namespace (all must be 127.0.0.1), the API's /connected answer and `ndif status`.
# Exit status 0 only if every service is alive and the API is connected.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/ndif/env.sh
source "$HERE/env.sh"

PIDS="$NDIF_STATE_DIR/pids"
ok=0
for name in redis s3 ray api; do
  f="$PIDS/$name"
  if [ ! -f "$f" ]; then echo "$name: not started"; ok=1; continue; fi
  sid=$(cat "$f")
  n=$(ps -e -o sid= | awk -v s="$sid" '$1 == s' | wc -l)
  if kill -0 "$sid" 2>/dev/null; then echo "$name: running (pid $sid, $n processes in session)"
  else echo "$name: DEAD (pid $sid, $n processes left in session)"; ok=1; fi
done
NS=()
if [ -n "$NDIF_NETNS" ]; then
  if ! ip netns list | grep -qw "$NDIF_NETNS"; then echo "netns $NDIF_NETNS: absent"; exit 1; fi
  NS=(ip netns exec "$NDIF_NETNS")
  echo "listeners in netns $NDIF_NETNS:"
  "${NS[@]}" ss -Htlnp | awk '{print "  " $4 "  " $6}'
  if "${NS[@]}" ss -Htln | awk '{print $4}' | grep -vqE '^(127\.0\.0\.1|\[::1\]|\[::ffff:127\.0\.0\.1\]):'; then
    echo "WARNING: a listener is not on loopback (harmless inside the lo-only netns, but unexpected)"
  fi
else
  # no namespace: only the sockets of the recorded sessions' processes (scripts/gpu_ndif/listeners.py)
  echo "listeners of the recorded sessions (no netns):"
  "$NDIF_PYTHON" "$NDIF_REPO/scripts/gpu_ndif/listeners.py" "$PIDS" | sed 's/^/  /' || ok=1
fi
if "${NS[@]}" curl -sf "$NDIF_HOST_URL/connected" >/dev/null 2>&1; then echo "api $NDIF_HOST_URL: connected"
else echo "api $NDIF_HOST_URL: not connected"; ok=1; fi
if [ $ok = 0 ]; then "${NS[@]}" ndif status 2>&1 | sed 's/^/  /' || true; fi
exit $ok
