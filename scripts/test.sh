#!/usr/bin/env bash
# The test suite (CPU, no downloads; installs into .venv first if needed). Opt-in markers: -m gpu | slow | ndif.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
