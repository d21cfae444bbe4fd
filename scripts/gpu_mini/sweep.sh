#!/usr/bin/env bash
# Train several recipes of an embedded model at once on one GPU, then score each on the calibration and
# test splits (and, with HELDOUT set to a held-out bench folder, on its "heldout" split): a thin caller of
# `python -m steer_audio.train.sweep` (steer_audio/train/sweep.py holds the logic and its docs).
#   RECIPES=scripts/gpu_mini/recipes.txt RUNS=/tmp/sweep bash scripts/gpu_mini/sweep.sh
#   MODEL=qmini RECIPES=recipes/qmini/seeds.txt HELDOUT=$STEER_AUDIO_CACHE/heldout bash scripts/gpu_mini/sweep.sh
# Each line of RECIPES is "name<TAB>train-mini options". A rerun resumes. Writes $RUNS/<name>/... and
# $RUNS/sweep.jsonl; with $OUT set, also $OUT/sweep.tar and $OUT/sweep.jsonl.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY="${PY:-python3}"
RUNS="${RUNS:-/tmp/sweep}"
args=(--recipes "${RECIPES:-scripts/gpu_mini/recipes.txt}" --runs "$RUNS"
  --bench "${BENCH:-${STEER_AUDIO_CACHE:?set STEER_AUDIO_CACHE}/listen-bench}"
  --model "${MODEL:-mini}" --device "${DEVICE:-cuda}")
[ -n "${HELDOUT:-}" ] && args+=(--heldout "$HELDOUT")
[ -n "${EVAL_LIMIT:-}" ] && args+=(--eval-limit "$EVAL_LIMIT")  # first N base items per template (dry runs)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
"$PY" -m steer_audio.train.sweep "${args[@]}" || exit $?
if [ -n "${OUT:-}" ]; then
  cp "$RUNS/sweep.jsonl" "$OUT/"
  tar -C "$RUNS" -cf "$OUT/sweep.tar" --exclude='*encoder_cache*' --exclude='checkpoint.safetensors' \
    --exclude='warm' .
fi
