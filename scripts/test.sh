#!/usr/bin/env bash
# The test suite (CPU, no downloads). GPU, slow and NDIF tests are opt-in markers: see README.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] && . .venv/bin/activate
exec python -m pytest -q -p no:cacheprovider "$@"
