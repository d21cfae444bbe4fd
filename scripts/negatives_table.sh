#!/usr/bin/env bash
# Issue 7's table on the embedded model: every method (the cached ones and the forward-pass ones, head-level
# and avs) x every negative (silence, noise, shuffle, drop), accuracy per condition, McNemar vs baseline, alpha
# chosen on calibration. Writes results/mini/negatives.md. N_CALIB/N_TEST base items per template (x 4
# condition twins x 10 templates); the defaults (40 calibration, 40 test items) take ~35 min on 2 CPU cores,
# most of it in head-level and avs (forward passes per alpha). The table: steer_audio/report/tables.py.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
BENCH="${BENCH:-data/listen-bench-neg}"
OUTS="${OUTS:-runs/negatives}"
steer-audio bench --out "$BENCH" --n-train 0 --n-calib "${N_CALIB:-1}" --n-test "${N_TEST:-1}" >/dev/null
for neg in silence noise shuffle drop; do
  steer-audio evaluate --model mini --data "$BENCH/listen-bench.json" --negative "$neg" --out "$OUTS/$neg" \
    --method baseline --method head-guided --method single-layer --method aad --method contrastive-options \
    --method head-level --method avs --k 8 --k-sweep 8 --seeds 5 --grid 0,1,2,4,8,16 --batch-size 8 >/dev/null
done
python -m steer_audio.report negatives "$OUTS" --out results/mini/negatives.md
