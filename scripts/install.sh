#!/usr/bin/env bash
# Install steer-audio into .venv (CPU torch pinned: 2.13.0 is the local CPU wheel; a bare `torch` would pull a
# multi-GB CUDA build). Idempotent. Usage: bash scripts/install.sh [extra,...]   (default: dev,mini)
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
extras="${1:-dev,mini}"
[ -x .venv/bin/python ] || python3 -m venv .venv
if ! .venv/bin/python -c "import steer_audio, nnsight, pytest" 2>/dev/null || [ "${FORCE_INSTALL:-0}" = 1 ]; then
  .venv/bin/pip install -q torch==2.13.0
  .venv/bin/pip install -q -e ".[$extras]"
fi
