# shellcheck shell=bash
# Environment for the self-hosted NDIF stack. Sourced by start.sh / status.sh / stop.sh (not executed).
#
# Two profiles, chosen with NDIF_PROFILE (default: cpu):
#   cpu  this 2-core CPU machine: fake GPU resources for the scheduler, the project's CPU model actor,
#        float32, serving the tiny (or embedded) model built from the offline model key.
#   gpu  a GPU server hosting Qwen2-Audio-7B-Instruct: stock NDIF model actor, real GPUs, bfloat16,
#        weights from a pre-filled Hugging Face cache (no hub access at run time). Written carefully but NOT
#        run here (no GPU on this machine).
# Anything below can be overridden by exporting it before sourcing this file.
# Every listener binds 127.0.0.1 and everything runs inside one loopback-only network namespace (none if
# NDIF_NETNS is set to "").

: "${NDIF_PROFILE:=cpu}"

NDIF_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export NDIF_REPO
: "${NDIF_VENV:=$NDIF_REPO/.venv-ndif}"           # server venv made by install.sh (nnsight 0.8.0, ndif 0.1.2)
# Instead of a venv, a `pip install --target` folder (scripts/gpu_ndif/run.sh on a machine without network):
# NDIF_SITE=/tmp/ndif-site NDIF_PYTHON=python3 NDIF_PYTHONPATH=/tmp/ndif-site:$PWD. NDIF_PYTHONPATH becomes the
# stack's PYTHONPATH (Ray workers inherit it); NDIF_SITE/bin holds the console scripts (ray, gunicorn, moto_server).
: "${NDIF_SITE:=}"
if [ -n "$NDIF_SITE" ]; then
  : "${NDIF_PYTHON:=python3}"
  : "${NDIF_BIN:=$NDIF_SITE/bin}"
else
  : "${NDIF_PYTHON:=$NDIF_VENV/bin/python}"
  : "${NDIF_BIN:=$NDIF_VENV/bin}"
fi
: "${NDIF_PYTHONPATH:=}"
if [ -n "$NDIF_PYTHONPATH" ]; then export PYTHONPATH="$NDIF_PYTHONPATH"; fi
export NDIF_SITE NDIF_PYTHON NDIF_BIN NDIF_PYTHONPATH
: "${NDIF_CLIENT_VENV:=$NDIF_REPO/.venv}"         # client venv (nnsight 0.8.1), used by status.sh's ping only
# Workaround 7 (Ray binds non-loopback addresses): Ray 2.60 puts its dashboard agent, runtime-env agent and
# Ray-client server on the host's external address even with --node-ip-address=127.0.0.1. The whole stack (and
# every client) therefore runs in a network namespace whose only interface is lo.
# NDIF_NETNS="" (set but empty): no namespace at all, for machines where `ip netns add` is impossible and nothing
# outside the machine is reachable anyway (the lent GPU machines); every service still binds 127.0.0.1.
: "${NDIF_NETNS=steeraudio-ndif}"
# Runtime state: pids/ (one file per service: PID == PGID == session id), logs/, home/, ray/ (Ray's temp dir;
# kept short because Ray's unix socket paths must stay under 107 characters).
: "${NDIF_STATE_DIR:=/tmp/steeraudio-ndif}"
export NDIF_PROFILE NDIF_VENV NDIF_CLIENT_VENV NDIF_NETNS NDIF_STATE_DIR

# ---- ports, all on 127.0.0.1 inside the namespace ----------------------------------------------------------
export NDIF_REDIS_PORT="${NDIF_REDIS_PORT:-6379}"
export NDIF_S3_PORT="${NDIF_S3_PORT:-9000}"
export NDIF_RAY_GCS_PORT="${NDIF_RAY_GCS_PORT:-6385}"
export NDIF_RAY_CLIENT_PORT="${NDIF_RAY_CLIENT_PORT:-10001}"
export NDIF_RAY_DASHBOARD_PORT="${NDIF_RAY_DASHBOARD_PORT:-8265}"
export NDIF_API_PORT="${NDIF_API_PORT:-8001}"
export NDIF_HOST_URL="http://127.0.0.1:${NDIF_API_PORT}"   # what clients pass as --remote / NDIF_HOST

# ---- NDIF's own settings ----------------------------------------------------------------------------------
export NDIF_HOME="$NDIF_STATE_DIR/home"
# Ray reads ~/.ray/auth_token, which Ray 2.60 writes the first time any driver starts on the machine (e.g. the
# `ray` extra's capture backend, scripts/test_ray.sh). With that file the stack's `ray status` and drivers never
# connect to this head (start.sh timed out waiting for Ray). The stack's processes get a HOME of their own.
export HOME="$NDIF_HOME"
export NDIF_REDIS_URL="redis://127.0.0.1:${NDIF_REDIS_PORT}"
export NDIF_RAY_ADDRESS="ray://127.0.0.1:${NDIF_RAY_CLIENT_PORT}"
# Workaround 3 (no rustfs binary: GitHub releases only): moto's S3 server stands in. Results above the inline
# cap and every non-blocking job go through it. The keys are moto's dummies; nothing leaves the namespace.
export NDIF_OBJECT_STORE_URL="http://127.0.0.1:${NDIF_S3_PORT}"
export NDIF_OBJECT_STORE_ACCESS_KEY="${NDIF_OBJECT_STORE_ACCESS_KEY:-testing}"
export NDIF_OBJECT_STORE_SECRET_KEY="${NDIF_OBJECT_STORE_SECRET_KEY:-testing}"
# No NDIF_POSTGRES_URL by default: no API-key database, so the API accepts every request and runs it as TRUSTED
# code in the model actor's process (see README "Security"). NDIF_KEYS=1 start.sh brings up our own key
# database (deploy/ndif/keys.sh, loopback only) and sets it; clients then send NDIF_API_KEY.
# No NDIF_LOKI_URL / NDIF_INFLUX_URL: telemetry off.
export NDIF_LOG_LEVEL="${NDIF_LOG_LEVEL:-INFO}"
# Cap one request's run time (seconds) so a runaway trace cannot hold the only replica forever.
export NDIF_DEFAULT_EXECUTION_TIMEOUT_SECONDS="${NDIF_DEFAULT_EXECUTION_TIMEOUT_SECONDS:-600}"

# ---- Python / Ray hygiene ---------------------------------------------------------------------------------
export GRPC_ENABLE_FORK_SUPPORT=0
export RAY_USAGE_STATS_ENABLED=0
export RAY_DISABLE_DOCKER_CPU_WARNING=1
export HF_HUB_OFFLINE=1            # model keys are offline; never wait ~23 s on hub retries
export TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false

case "$NDIF_PROFILE" in
  cpu)
    # Workaround 5 (GPU-only scheduler and actor): the controller only places models on nodes with a "GPU"
    # resource and sizes them with "cuda_memory_bytes"; the stock actor calls CUDA while loading. So the Ray head
    # advertises one fake GPU with 8 GB, and the model actor is replaced through NDIF's own knob with the
    # project's CPU actor (steer_audio/remote/cpu_actor.py), which loads on CPU and never touches CUDA.
    export NDIF_MODEL_IMPORT_PATH="${NDIF_MODEL_IMPORT_PATH:-steer_audio.remote.cpu_actor.CPUModelActor}"
    export NDIF_RAY_NUM_GPUS="${NDIF_RAY_NUM_GPUS:-1}"
    export NDIF_RAY_RESOURCES="${NDIF_RAY_RESOURCES:-{\"head\": 10, \"cuda_memory_bytes\": 8000000000, \"cpu_memory_bytes\": 16000000000\}}"
    # Logical CPUs for Ray (controller 1 + model actor 1 + slack); the machine has 2 real cores.
    export NDIF_RAY_NUM_CPUS="${NDIF_RAY_NUM_CPUS:-4}"
    export NDIF_RAY_OBJECT_STORE_BYTES="${NDIF_RAY_OBJECT_STORE_BYTES:-500000000}"
    # bf16 on CPU is ~2.6x slower than fp32 and would not match the local fp32 run bit for bit.
    export NDIF_DEFAULT_DTYPE="${NDIF_DEFAULT_DTYPE:-float32}"
    # One torch thread per process on a 2-vCPU VM (2 threads gave ~1 s stalls).
    export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 STEER_AUDIO_TORCH_THREADS=1
    # Optional: full model key(s) to deploy (pinned) when the controller starts, '|'-separated, exactly as a
    # client sends them: .venv/bin/python -c 'from steer_audio.remote import model_key_for; print(model_key_for("tiny"))'
    # Empty: the first request deploys its model (~15-20 s cold on this machine).
    export NDIF_DEPLOYMENTS="${NDIF_DEPLOYMENTS:-}"
    ;;
  gpu)
    # NOT RUN HERE. A single- or multi-GPU host serving Qwen2-Audio-7B-Instruct (~16 GB in bf16).
    # - Stock GPU actor (CUDA placement, HOT->WARM caching to CPU RAM). Ray detects the GPUs; the custom
    #   resources (head marker, total cuda_memory_bytes, cpu_memory_bytes for the WARM cache) come from NDIF's own
    #   helper, exactly what NDIF's start scripts feed to `ray start --resources`.
    export NDIF_MODEL_IMPORT_PATH="${NDIF_MODEL_IMPORT_PATH:-ndif.services.ray.deployments.modeling.base.ModelActor}"
    export NDIF_RAY_NUM_GPUS="${NDIF_RAY_NUM_GPUS:-$(nvidia-smi -L 2>/dev/null | wc -l)}"
    if [ -z "${NDIF_RAY_RESOURCES:-}" ]; then
      NDIF_RAY_RESOURCES="$("$NDIF_PYTHON" -m ndif.services.ray.resources --head)"
    fi
    export NDIF_RAY_RESOURCES
    export NDIF_RAY_NUM_CPUS="${NDIF_RAY_NUM_CPUS:-$(nproc)}"
    export NDIF_RAY_OBJECT_STORE_BYTES="${NDIF_RAY_OBJECT_STORE_BYTES:-4000000000}"
    export NDIF_DEFAULT_DTYPE="${NDIF_DEFAULT_DTYPE:-bfloat16}"
    # The replica's CUDA budget is its weights' size x (1 + padding factor) + bias (NDIF's default 0.15, 500 MB:
    # ~2.9 GB of headroom on a 7B in bf16), and the actor caps its allocator at that fraction of the card. A
    # capture batch of 16 clips x (audio + silence) at ~800 tokens a row needs more than that for activations.
    export NDIF_DEFAULT_PADDING_FACTOR="${NDIF_DEFAULT_PADDING_FACTOR:-1.0}"
    # Weights come from a Hugging Face cache filled beforehand on a machine with hub access, e.g.
    #   HF_HOME=/srv/hf hf download Qwen/Qwen2-Audio-7B-Instruct --revision <commit>
    # The model key must name the same revision (the wrapper's key carries hub id + revision), and HF_HUB_OFFLINE=1
    # above keeps the server from contacting the hub.
    export HF_HOME="${HF_HOME:-/srv/hf}"
    # Deploy the model when the controller starts, so the first user does not pay the cold load. The exact key:
    #   .venv/bin/python -c 'from steer_audio.remote import model_key_for as k; print(k("qwen2-audio", "<commit>"))'
    # The stock actor passes device=<gpu index> (one GPU) or device_map/max_memory (several) to the wrapper's _load.
    export NDIF_DEPLOYMENTS="${NDIF_DEPLOYMENTS:-}"
    # Python 3.12+ with a CUDA torch: workaround 1 (--ignore-requires-python) is then unnecessary; workaround 2
    # (nnsight 0.8.0 on the server) is still needed with ndif 0.1.2.
    ;;
  *)
    echo "env.sh: unknown NDIF_PROFILE=$NDIF_PROFILE (cpu|gpu)" >&2
    return 1 2>/dev/null || exit 1
    ;;
esac

export PATH="$NDIF_BIN:$PATH"
