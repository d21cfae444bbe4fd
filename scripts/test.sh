#!/usr/bin/env bash
# The test suite (CPU, no downloads; installs into .venv and sets up `mini` + listen-bench first if needed).
# Skips print their reason (-rs); under CI=true a skip for a missing tool, cache or package is a failure.
# Opt-in markers: -m gpu | slow | ndif.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/setup_mini.sh >/dev/null
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest -q -rs -p no:cacheprovider "$@"
