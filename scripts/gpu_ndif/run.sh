#!/usr/bin/env bash
# Runs on the DEVICE (no network, no apt), from the repo root, once the parts of scripts/gpu_ndif/prepare.sh are
# in the stash: install the self-hosted NDIF stack into a --target folder, start it (deploy/ndif/start.sh) serving
# one model pinned via NDIF_DEPLOYMENTS, measure remote vs local (benchmarks/ndif_overhead.py) and compare the
# artifacts of `steer-audio discover` / `evaluate` run locally and with --remote. The stack is stopped by PID
# (deploy/ndif/stop.sh) at the end, also on failure. Results: OUT/ndif_gpu.{json,md,log}, written as it goes.
#
#   scripts/gpu_ndif/run.sh [--stash /tmp/ndif-stash] [--profile gpu|cpu] [--model qwen2-audio-7b-random]
#       [--device cuda] [--dtype bfloat16] [--batch-size 16] [--netns auto|none|NAME] [--budget 540] [--out DIR]
#       [--site /tmp/ndif-site] [--server-python python3] [--client-python python3]
#       [--client-pythonpath /tmp/site:$PWD] [--examples 64] [--reps 10] [--steps install,start,bench,artifacts]
#
# --netns auto (default): a loopback-only namespace if `ip netns add` works here, else none; none: no namespace
# (deploy/ndif/env.sh NDIF_NETNS=""). Every service is told to bind 127.0.0.1, but Ray 2.60's gRPC servers (GCS,
# raylet, workers, dashboard agent) bind all interfaces whatever it is told (deploy/ndif workaround 7): without a
# namespace they are reachable from the machine's own network. scripts/gpu_ndif/listeners.py records every
# listener of the stack either way (ndif_gpu.json "listeners").
# Budget: each step gets what is left of --budget minus a reserve for stop.sh; a step that runs out is killed,
# recorded as such, and the next steps are skipped.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
STASH=/tmp/ndif-stash PROFILE=gpu MODEL=qwen2-audio-7b-random DEVICE=cuda DTYPE=bfloat16 BATCH=16 NETNS=auto
BUDGET=540 OUTD="${OUT:-/tmp/ndif-out}" SITE=/tmp/ndif-site SERVER_PY=python3 CLIENT_PY=python3
CLIENT_PP="/tmp/site:$REPO" EXAMPLES=64 REPS=10 STEPS=install,start,bench,artifacts
while [ $# -gt 0 ]; do
  case "$1" in
    --stash) STASH=$2 ;; --profile) PROFILE=$2 ;; --model) MODEL=$2 ;; --device) DEVICE=$2 ;;
    --dtype) DTYPE=$2 ;; --batch-size) BATCH=$2 ;; --netns) NETNS=$2 ;; --budget) BUDGET=$2 ;;
    --out) OUTD=$2 ;; --site) SITE=$2 ;; --server-python) SERVER_PY=$2 ;; --client-python) CLIENT_PY=$2 ;;
    --client-pythonpath) CLIENT_PP=$2 ;; --examples) EXAMPLES=$2 ;; --reps) REPS=$2 ;; --steps) STEPS=$2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
T0=$(date +%s)
RESERVE=45                        # seconds kept for stop.sh and the log copies
UNPACK=/tmp/ndif-unpack REDIS_BIN=/tmp/ndif-redis-bin STATE=/tmp/steeraudio-ndif-run
mkdir -p "$OUTD"
OUTD="$(cd "$OUTD" && pwd)"
JSON="$OUTD/ndif_gpu.json" LOG="$OUTD/ndif_gpu.log"
exec > >(tee -a "$LOG") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0
# the lent multi-GPU kinds' rule (harmless on one GPU); Ray workers inherit it
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

log() { echo "[gpu_ndif/run +$(($(date +%s) - T0))s] $*"; }
left() { local l=$((BUDGET - ($(date +%s) - T0) - RESERVE)); echo $((l > 1 ? l : 1)); }
rec() { "$SERVER_PY" "$REPO/scripts/gpu_ndif/record.py" "$JSON" "$@"; }  # rec KEY JSON-VALUE
want() { [[ ",$STEPS," == *",$1,"* ]]; }
client() { "${CPFX[@]}" env PYTHONPATH="$CLIENT_PP" "$CLIENT_PY" "$@"; }
CPFX=()
rm -f "$JSON"
rec config "$("$SERVER_PY" -c 'import json, sys; print(json.dumps(dict(zip(sys.argv[1::2], sys.argv[2::2]))))' \
  profile "$PROFILE" model "$MODEL" device "$DEVICE" dtype "$DTYPE" batch_size "$BATCH" netns_arg "$NETNS" \
  budget_s "$BUDGET" examples "$EXAMPLES" reps "$REPS" steps "$STEPS" git "$(git rev-parse --short HEAD 2>/dev/null)")"
log "start: profile $PROFILE, model $MODEL, device $DEVICE, batch $BATCH, budget ${BUDGET}s, out $OUTD"

# ---- the stack's environment (deploy/ndif/env.sh reads these) ------------------------------------------------
export NDIF_PROFILE="$PROFILE" NDIF_SITE="$SITE" NDIF_PYTHON="$SERVER_PY" NDIF_PYTHONPATH="$SITE:$REPO"
export NDIF_STATE_DIR="$STATE" HF_HOME=/tmp/ndif-hf NDIF_DEFAULT_DTYPE="$DTYPE"
export PATH="$REDIS_BIN:$PATH"
started=0
finish() {
  local rc=$?
  if [ "$started" = 1 ]; then
    log "stopping the stack (deploy/ndif/stop.sh)"
    local t=$(date +%s)
    timeout 60 "$REPO/deploy/ndif/stop.sh" || log "stop.sh exit $?"
    rec stop "{\"seconds\": $(($(date +%s) - t))}"
    # anything of the recorded sessions left? (stop.sh empties pids/; re-check the saved copy)
    if [ -d "$STATE/pids.saved" ]; then
      if "$SERVER_PY" "$REPO/scripts/gpu_ndif/listeners.py" "$STATE/pids.saved" --alive >/dev/null; then
        rec leftover_processes true
        log "WARNING: processes of the stack survived stop.sh"
      else
        rec leftover_processes false
      fi
    fi
    mkdir -p "$OUTD/ndif_stack_logs"
    for f in "$STATE"/logs/*.log; do [ -e "$f" ] && tail -c 100000 "$f" >"$OUTD/ndif_stack_logs/$(basename "$f")"; done
  fi
  rec finished "{\"rc\": $rc, \"wall_s\": $(($(date +%s) - T0))}"
  "$SERVER_PY" "$REPO/scripts/gpu_ndif/record.py" "$JSON" --md "$OUTD/ndif_gpu.md"
  log "done (exit $rc): $OUTD/ndif_gpu.json, ndif_gpu.md, ndif_gpu.log"
}
trap finish EXIT
trap 'exit 143' TERM INT HUP   # a signal ends the script through finish (stop.sh) too
fail() { rec failed "$("$SERVER_PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1")"; log "FAILED: $1"; exit 1; }

# ---- 1. install: verify the parts, unpack, pip install --target, redis wrappers --------------------------------
if want install; then
  t=$(date +%s)
  [ -f "$STASH/index.json" ] || fail "no $STASH/index.json (copy .ndifwhl/index.json with the first part)"
  TAR_SHA=$("$SERVER_PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["tar_sha256"])' "$STASH/index.json")
  if [ -f "$SITE/.installed-$TAR_SHA" ] && [ -x "$REDIS_BIN/redis-server" ]; then
    log "already installed ($SITE, tar $TAR_SHA)"
  else
    "$SERVER_PY" - "$STASH" <<'PY' || fail "parts missing or corrupt (sha256 check)"
import hashlib, json, os, sys
stash = sys.argv[1]
index = json.load(open(os.path.join(stash, "index.json")))
bad = []
for p in index["parts"]:
    f = os.path.join(stash, p["name"])
    if not os.path.exists(f):
        bad.append(f"{p['name']} missing")
        continue
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for b in iter(lambda: fh.read(1 << 20), b""):
            h.update(b)
    if h.hexdigest() != p["sha256"] or os.path.getsize(f) != p["bytes"]:
        bad.append(f"{p['name']} sha256/size mismatch")
print("parts:", ", ".join(p["name"] for p in index["parts"]), "->", "; ".join(bad) if bad else "all sha256 OK")
sys.exit(1 if bad else 0)
PY
    rm -rf "$UNPACK" && mkdir -p "$UNPACK"
    PARTS=$("$SERVER_PY" -c 'import json,sys; print(" ".join(p["name"] for p in json.load(open(sys.argv[1]))["parts"]))' "$STASH/index.json")
    (cd "$STASH" && cat $PARTS) | tar -x -C "$UNPACK" || fail "tar of the parts did not unpack"
    log "pip install --target $SITE ($(ls "$UNPACK"/wheels/*.whl | wc -l) wheels)"
    rm -rf "$SITE"
    # --ignore-requires-python: ndif 0.1.2 says >=3.12; the cp311 dry run installs it anyway (deploy/ndif, workaround 1)
    "$SERVER_PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
      --ignore-requires-python \
      --target "$SITE" "$UNPACK"/wheels/*.whl || fail "pip install --target $SITE failed"
    # redis: Debian 12 binaries; the carried libraries only if the machine's own do not suffice
    R="$UNPACK/redis" LIBS="$UNPACK/redis/usr/lib/x86_64-linux-gnu:$UNPACK/redis/lib/x86_64-linux-gnu"
    mkdir -p "$REDIS_BIN"
    for b in redis-server redis-cli; do
      if "$R/usr/bin/$b" --version >/dev/null 2>&1; then pre=""; else pre="LD_LIBRARY_PATH=$LIBS "; fi
      printf '#!/bin/sh\nexec env %s"%s" "$@"\n' "$pre" "$R/usr/bin/$b" >"$REDIS_BIN/$b"
      chmod +x "$REDIS_BIN/$b"
    done
    "$REDIS_BIN/redis-server" --version || fail "redis-server does not run here (ldd: $(ldd "$R/usr/bin/redis-server" 2>&1 | grep 'not found' | tr '\n' ' '))"
    touch "$SITE/.installed-$TAR_SHA"
  fi
  VERS=$(PYTHONPATH="$SITE:$REPO" "$SERVER_PY" -c 'import json, importlib.metadata as m
print(json.dumps({p: m.version(p) for p in ("ndif", "nnsight", "ray", "transformers", "moto", "torch", "numpy", "redis", "fastapi", "gunicorn")}))') \
    || fail "the server packages do not import"
  rec install "{\"seconds\": $(($(date +%s) - t)), \"server_versions\": $VERS, \"redis\": \"$("$REDIS_BIN/redis-server" --version | head -1)\"}"
  log "installed: $VERS"
fi

# ---- 2. network namespace or none ---------------------------------------------------------------------------------
NS_NAME=""
case "$NETNS" in
  none) ;;
  auto)
    if ip netns add steeraudio-ndif-probe 2>/dev/null; then
      if ip netns exec steeraudio-ndif-probe ip link set lo up 2>/dev/null \
        && ip netns exec steeraudio-ndif-probe true 2>/dev/null; then NS_NAME=steeraudio-ndif-run; fi
      ip netns del steeraudio-ndif-probe 2>/dev/null
    fi
    if [ -z "$NS_NAME" ]; then
      log "ip netns add does not work here: no namespace (every service on 127.0.0.1)"
    fi ;;
  *) NS_NAME=$NETNS ;;
esac
export NDIF_NETNS="$NS_NAME"
if [ -n "$NS_NAME" ]; then CPFX=(ip netns exec "$NS_NAME"); fi
rec netns "\"${NS_NAME:-none}\""

# ---- 3. start the stack, the model pinned -------------------------------------------------------------------------
URL=""
if want start; then
  t=$(date +%s)
  KEY=$(env PYTHONPATH="$CLIENT_PP" "$CLIENT_PY" -c 'import sys; from steer_audio.remote import model_key_for
print(model_key_for(sys.argv[1]))' "$MODEL") || fail "model_key_for($MODEL) failed (client packages?)"
  export NDIF_DEPLOYMENTS="$KEY"
  # gpu profile: the Ray head's custom resources from NDIF's own helper, once (env.sh would otherwise run it, a
  # CUDA initialisation, every time start.sh / stop.sh source it)
  if [ "$PROFILE" = gpu ] && [ -z "${NDIF_RAY_RESOURCES:-}" ]; then
    NDIF_RAY_RESOURCES=$(PYTHONPATH="$SITE:$REPO" "$SERVER_PY" -m ndif.services.ray.resources --head) \
      || fail "python -m ndif.services.ray.resources --head failed"
    export NDIF_RAY_RESOURCES
    rec ray_resources "$NDIF_RAY_RESOURCES"
  fi
  rec model_key "$("$SERVER_PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$KEY")"
  log "starting the stack (netns ${NS_NAME:-none}); NDIF_DEPLOYMENTS=$KEY"
  started=1
  rm -rf "$STATE/pids.saved"
  URL=$(timeout "$(left)" "$REPO/deploy/ndif/start.sh" | tail -1)
  [ -n "$URL" ] || fail "deploy/ndif/start.sh failed or ran out of time (logs: $STATE/logs, copied to ndif_stack_logs/)"
  cp -r "$STATE/pids" "$STATE/pids.saved"
  rec start "{\"seconds\": $(($(date +%s) - t)), \"url\": \"$URL\"}"
  # inside the namespace (if any): /proc/net/tcp is per network namespace
  L=$("${CPFX[@]}" "$SERVER_PY" "$REPO/scripts/gpu_ndif/listeners.py" "$STATE/pids" --json)
  rec listeners "$L"
  log "listeners (netns ${NS_NAME:-none}): $L"
fi

# ---- 4. remote vs local: overhead, capture / steering throughput, payload ------------------------------------------
if want bench && [ -n "$URL" ]; then
  t=$(date +%s)
  log "benchmarks/ndif_overhead.py ($(left) s left)"
  if timeout "$(left)" "${CPFX[@]}" env PYTHONPATH="$CLIENT_PP" "$CLIENT_PY" benchmarks/ndif_overhead.py --url "$URL" \
    --model "$MODEL" --device "$DEVICE" --dtype "$DTYPE" --batch-size "$BATCH" --examples "$EXAMPLES" \
    --reps "$REPS" --json "$OUTD/ndif_gpu_bench.json" >"$OUTD/ndif_gpu_bench.md"; then
    rec bench "$(cat "$OUTD/ndif_gpu_bench.json")"
  else
    rc=$?
    rec bench "{\"failed\": true, \"rc\": $rc, \"seconds\": $(($(date +%s) - t))}"
    log "bench failed (exit $rc; 124 = out of time)"
  fi
fi

# ---- 5. artifacts: discover + evaluate, local vs --remote, on the same demo data ------------------------------------
if want artifacts && [ -n "$URL" ]; then
  DATA=/tmp/ndif-demo RUNS=/tmp/ndif-runs
  rm -rf "$RUNS" && mkdir -p "$RUNS"
  client -c 'import sys; from pathlib import Path; from steer_audio.data.demo import write_demo
print(write_demo(Path(sys.argv[1])))' "$DATA" >"$RUNS/data_path" || fail "write_demo failed"
  DPATH=$(tail -1 "$RUNS/data_path")
  COMMON=(--model "$MODEL" --data "$DPATH" --device "$DEVICE" --dtype "$DTYPE" --batch-size "$BATCH" --audio-encoder full-window)
  for stage in discover evaluate; do
    if [ "$stage" = discover ]; then EXTRA=(--draws 20); else
      EXTRA=(--method baseline --method head-level --grid 0,2 --seeds 1 --no-controls --limit 16); fi
    for where in local remote; do
      [ "$(left)" -gt 20 ] || { log "no time left for $stage $where"; rec "artifacts_$stage" '{"skipped": "out of time"}'; break 2; }
      R=(); [ "$where" = remote ] && R=(--remote "$URL")
      t=$(date +%s)
      log "steer-audio $stage ($where)"
      timeout "$(left)" "${CPFX[@]}" env PYTHONPATH="$CLIENT_PP" NDIF_HOST= "$CLIENT_PY" -c 'from steer_audio.cli import main; main()' "$stage" \
        "${COMMON[@]}" "${EXTRA[@]}" "${R[@]}" --out "$RUNS/$stage-$where" >"$RUNS/$stage-$where.stdout" 2>"$RUNS/$stage-$where.stderr"
      rc=$?
      tail -c 4000 "$RUNS/$stage-$where.stderr" >"$OUTD/ndif_gpu_$stage-$where.stderr.txt"
      rec "time_${stage}_$where" "{\"rc\": $rc, \"seconds\": $(($(date +%s) - t))}"
      [ $rc = 0 ] || { log "$stage $where failed (exit $rc)"; continue 2; }
    done
    C=$(env PYTHONPATH="$CLIENT_PP" "$CLIENT_PY" "$REPO/scripts/gpu_ndif/compare_runs.py" "$RUNS/$stage-local" "$RUNS/$stage-remote")
    rec "artifacts_$stage" "$C"
    log "artifacts $stage: $C"
  done
fi
exit 0
