#!/usr/bin/env bash
# Install steer-audio into .venv (CPU torch pinned: 2.13.0 is the local CPU wheel; a bare `torch` would pull a
# multi-GB CUDA build). Idempotent. Usage: bash scripts/install.sh [extra,...]   (default: dev,mini)
# On a fresh Debian/Ubuntu machine it first apt-installs what a venv needs (python3, python3-venv, certificates),
# and, with the `dev` extra, what torch.compile needs in the tests (g++, python3-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
extras="${1:-dev,mini}"
BASE_PKGS=(python3 python3-venv python3-pip ca-certificates)
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c "import ensurepip, venv" 2>/dev/null \
  || [ ! -f /etc/ssl/certs/ca-certificates.crt ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "install.sh: apt-get install ${BASE_PKGS[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${BASE_PKGS[@]}" >/dev/null
fi
# the tests (extra `dev`) also compile: torch.compile's CPU backend (inductor) builds C++ against Python.h
# (tests/test_capture_fast.py); a fresh Debian has neither g++ nor the headers
if [[ ",$extras," == *",dev,"* ]] && { ! command -v g++ >/dev/null 2>&1 || ! python3 -c \
  "import os, sys, sysconfig; sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))"; }; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "install.sh: apt-get install g++ python3-dev (torch.compile in the tests)" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends g++ python3-dev >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
# installed? (find_spec, not import: importing nnsight imports torch, seconds on 2 cores)
if ! .venv/bin/python -c "import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ('steer_audio', 'nnsight', 'torch', 'pytest')))" 2>/dev/null \
  || [ "${FORCE_INSTALL:-0}" = 1 ]; then
  .venv/bin/pip install -q torch==2.13.0
  .venv/bin/pip install -q -e ".[$extras]"
fi
