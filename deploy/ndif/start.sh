#!/usr/bin/env bash
# Start a self-hosted NDIF (redis, S3 stand-in, Ray head + NDIF controller, NDIF API) inside a loopback-only
# network namespace (or, with NDIF_NETNS="", in the machine's own network, every listener on 127.0.0.1). Each long-running service is started in its own session; its PID (== PGID == SID) is
# written to $NDIF_STATE_DIR/pids/<name> so stop.sh can end exactly what this script started.
# Usage: deploy/ndif/start.sh            (profile from NDIF_PROFILE, default cpu; see env.sh)
#        NDIF_KEYS=1 deploy/ndif/start.sh   also the API-key database (keys.sh): every request needs a key
# Prints the API URL on stdout once the API answers /connected; logs go to $NDIF_STATE_DIR/logs.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/ndif/env.sh
source "$HERE/env.sh"

log() { echo "[ndif-start] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [ -n "$NDIF_NETNS" ]; then [ "$(id -u)" = 0 ] || die "needs root (ip netns; NDIF_NETNS=\"\" runs without one)"; fi
[ -x "$NDIF_BIN/ray" ] || die "server packages missing ($NDIF_BIN/ray): run deploy/ndif/install.sh (or set NDIF_SITE)"
command -v redis-server >/dev/null || die "redis-server missing: run deploy/ndif/install.sh"

PIDS="$NDIF_STATE_DIR/pids" LOGS="$NDIF_STATE_DIR/logs"
for f in "$PIDS"/*; do
  [ -e "$f" ] || continue
  if kill -0 "$(cat "$f")" 2>/dev/null; then die "already running ($f); run deploy/ndif/stop.sh first"; fi
done
rm -rf "$PIDS" "$NDIF_STATE_DIR/ray"
mkdir -p "$PIDS" "$LOGS" "$NDIF_HOME" "$NDIF_STATE_DIR/ray"
created_ns=0
# A start that fails half-way stops what it had started (by recorded PID, via stop.sh).
on_exit() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    log "start failed (exit $rc): stopping what was started"
    if [ "$created_ns" = 1 ]; then "$HERE/stop.sh" || true; else "$HERE/stop.sh" --keep-netns || true; fi
  fi
}
trap on_exit EXIT
T0=$(date +%s.%N)

# Workaround 7: a namespace whose only interface is lo. Nothing inside can bind or reach another address,
# whatever Ray decides to bind.
# NDIF_NETNS="": no namespace (the machine's own loopback; every service is told to bind 127.0.0.1).
NS=()
if [ -n "$NDIF_NETNS" ]; then
  if ! ip netns list | grep -qw "$NDIF_NETNS"; then
    ip netns add "$NDIF_NETNS"
    created_ns=1
  fi
  ip netns exec "$NDIF_NETNS" ip link set lo up
  NS=(ip netns exec "$NDIF_NETNS")
fi
# http_ok URL: curl where there is one, else the server's Python (machines without curl)
http_ok() {
  if command -v curl >/dev/null; then curl -sf "$1"
  else "$NDIF_PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' "$1"; fi
}

# start NAME CMD...: own session (setsid without fork: $! is the session leader, PID == PGID == SID).
start() {
  local name=$1; shift
  setsid "${NS[@]}" "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.tmp" && mv "$PIDS/$name.tmp" "$PIDS/$name"
  log "started $name (pid $!)"
}
wait_for() {  # wait_for WHAT SECONDS CMD...
  local what=$1 secs=$2; shift 2
  for _ in $(seq "$secs"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  die "$what not ready after ${secs}s (logs: $LOGS)"
}

# Workaround 4: Debian's redis-server, run by us (not as a system service), loopback only, no persistence.
start redis redis-server --port "$NDIF_REDIS_PORT" --bind 127.0.0.1 --protected-mode yes \
  --save "" --appendonly no --daemonize no
# Workaround 3: moto's S3 server instead of rustfs.
start s3 moto_server -H 127.0.0.1 -p "$NDIF_S3_PORT"
wait_for redis 30 "${NS[@]}" redis-cli -h 127.0.0.1 -p "$NDIF_REDIS_PORT" ping
wait_for s3 60 "${NS[@]}" bash -c "$(declare -f http_ok); http_ok http://127.0.0.1:$NDIF_S3_PORT/"

# The API-key database (keys.sh), loopback only, started before the API so the API verifies every key.
if [ "${NDIF_KEYS:-0}" = 1 ]; then
  "$HERE/keys.sh" init
  start keysdb "$HERE/keys.sh" run
  wait_for keysdb 60 "${NS[@]}" runuser -u postgres -- "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/pg_isready" \
    -q -h "$NDIF_STATE_DIR/keys-db" -p "${NDIF_KEYS_PORT:-5433}"
  NDIF_POSTGRES_URL="$("$HERE/keys.sh" url)"
  export NDIF_POSTGRES_URL
  log "API keys required (key database on 127.0.0.1:${NDIF_KEYS_PORT:-5433}; add one: deploy/ndif/keys.sh add EMAIL)"
fi

# Ray head. Workaround 5: --num-gpus / cuda_memory_bytes advertise a fake GPU on the CPU profile (the
# controller skips nodes without a "GPU" resource); env.sh's gpu profile passes the real count.
start ray ray start --head --block --node-ip-address=127.0.0.1 --port="$NDIF_RAY_GCS_PORT" \
  --num-cpus="$NDIF_RAY_NUM_CPUS" --num-gpus="$NDIF_RAY_NUM_GPUS" \
  --object-store-memory="$NDIF_RAY_OBJECT_STORE_BYTES" --resources="$NDIF_RAY_RESOURCES" \
  --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port="$NDIF_RAY_DASHBOARD_PORT" \
  --ray-client-server-port="$NDIF_RAY_CLIENT_PORT" --temp-dir="$NDIF_STATE_DIR/ray" --disable-usage-stats
wait_for ray 120 "${NS[@]}" ray status --address="127.0.0.1:$NDIF_RAY_GCS_PORT"

# The NDIF controller: a detached Ray actor. This launcher is a short-lived Ray driver that schedules it and
# exits (as NDIF's own ray/start.sh does); the actor lives in the Ray head's session.
log "launching the NDIF controller actor"
(cd "$NDIF_STATE_DIR" && RAY_ADDRESS="127.0.0.1:$NDIF_RAY_GCS_PORT" "${NS[@]}" \
  "$NDIF_PYTHON" -m ndif.services.ray.deployments.controller.controller) >"$LOGS/controller-launch.log" 2>&1 \
  || die "controller launch failed (see $LOGS/controller-launch.log)"

# The API: gunicorn + uvicorn; its on_starting hook spawns the queue dispatcher (a Ray client). --bind on the
# command line overrides gunicorn_conf's 0.0.0.0.
start api gunicorn --config python:ndif.services.api.gunicorn_conf --bind "127.0.0.1:$NDIF_API_PORT" \
  ndif.services.api.app:app
wait_for api 60 "${NS[@]}" bash -c "$(declare -f http_ok); http_ok $NDIF_HOST_URL/ping"
# The dispatcher sets ray:connected once its Ray client is up; /connected answers 503 until then.
wait_for "dispatcher (ray:connected)" 180 "${NS[@]}" bash -c "$(declare -f http_ok); http_ok $NDIF_HOST_URL/connected"

log "ready in $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}') s (netns ${NDIF_NETNS:-none}, profile $NDIF_PROFILE)"
echo "$NDIF_HOST_URL"
