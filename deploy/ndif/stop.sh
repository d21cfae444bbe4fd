#!/usr/bin/env bash
# Stop everything start.sh started: SIGTERM to each recorded process group, then, after 10 s, SIGKILL to every
# process still in each recorded session (Ray workers get their own process groups but stay in the session of
# the `ray start` leader). Finally delete the network namespace (if NDIF_NETNS is not ""). Never matches processes
# by name. Reads sessions from /proc (no procps needed).
# Usage: deploy/ndif/stop.sh [--keep-netns]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/ndif/env.sh
source "$HERE/env.sh"
log() { echo "[ndif-stop] $*" >&2; }

PIDS="$NDIF_STATE_DIR/pids"
sessions=()
# API first (it holds Ray client connections), then Ray, then the stores.
for name in api ray s3 redis keysdb; do
  f="$PIDS/$name"
  [ -f "$f" ] || continue
  sid=$(cat "$f")
  sessions+=("$sid")
  if kill -0 "$sid" 2>/dev/null; then
    log "SIGTERM process group $sid ($name)"
    kill -TERM -- "-$sid" 2>/dev/null || true
  fi
done

members() {  # live (non-zombie) PIDs whose session id is $1, from /proc/PID/stat (fields after "(comm) ")
  local f line rest
  for f in /proc/[0-9]*/stat; do
    line=$(cat "$f" 2>/dev/null) || continue
    rest=${line##*) }
    # rest: state ppid pgrp session ...
    read -r st _ _ sess _ <<<"$rest"
    if [ "$sess" = "$1" ] && [ "$st" != Z ]; then f=${f#/proc/}; echo "${f%/stat}"; fi
  done
}
any_left() {
  local sid
  for sid in "${sessions[@]}"; do [ -n "$(members "$sid")" ] && return 0; done
  return 1
}

if [ ${#sessions[@]} -gt 0 ]; then
  for _ in $(seq 10); do any_left || break; sleep 1; done
  for sid in "${sessions[@]}"; do
    for pid in $(members "$sid"); do
      log "SIGKILL straggler $pid (session $sid)"
      kill -KILL "$pid" 2>/dev/null || true
    done
  done
  for _ in $(seq 10); do any_left || break; sleep 0.5; done
  if any_left; then log "WARNING: processes survived SIGKILL"; fi
fi
rm -f "$PIDS"/*

if [ -n "$NDIF_NETNS" ] && [ "${1:-}" != "--keep-netns" ] && ip netns list | grep -qw "$NDIF_NETNS"; then
  ip netns del "$NDIF_NETNS"
  log "deleted netns $NDIF_NETNS"
fi
log "stopped"
