#!/usr/bin/env bash
# Every registered method x every negative on the whole listen-bench calibration and test splits, then one
# results page for the model. The coordinator runs it on the GPU machine:
#
#   bash scripts/gpu_scale/evaluate_all.sh MODEL BENCH_JSON OUT_ROOT
#     MODEL       a model name or folder (mini, a projector variant's folder, qwen2-audio, ...)
#     BENCH_JSON  listen-bench.json (its `split` field gives calibration = calib, evaluation = test)
#     OUT_ROOT    one run directory per negative is written under it, and OUT_ROOT/results.md
#
# Settings (environment, defaults in brackets): DEVICE [cuda], DTYPE [the CLI's default], K [8],
# K_SWEEP [4,8,12], SEEDS [30] (matched random-head sets), GRID [0,0.5,1,2,4,8,16], BATCH [32],
# NEGATIVES ["silence noise shuffle drop"], LIMIT [unset = whole splits; N = first N of each split, for
# smoke runs], METHODS [unset = every method of the registry], PYTHON [python3], REPORT_ONLY [unset; 1 =
# only rebuild OUT_ROOT/results.md from the negatives' finished run directories, e.g. after one call per
# negative with NEGATIVES=silence, ...]. alpha, the layer and the gate threshold are
# chosen on calibration, real-audio items only (steer_audio/evaluate/protocol.py); silence twins are
# scored as diagnostics only. A finished negative is resumed from its capture cache on a rerun.
set -euo pipefail
if [ "$#" -ne 3 ]; then
  echo "usage: $0 MODEL BENCH_JSON OUT_ROOT" >&2
  exit 2
fi
MODEL=$1 BENCH=$2 ROOT=$3
DEVICE=${DEVICE:-cuda} K=${K:-8} K_SWEEP=${K_SWEEP:-4,8,12} SEEDS=${SEEDS:-30}
GRID=${GRID:-0,0.5,1,2,4,8,16} BATCH=${BATCH:-32} NEGATIVES=${NEGATIVES:-silence noise shuffle drop}
[ -f "$BENCH" ] || { echo "error: bench file $BENCH not found" >&2; exit 1; }
BENCH=$(realpath "$BENCH") ROOT=$(realpath -m "$ROOT")  # before the cd below
cd "$(dirname "$0")/../.."
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY=${PYTHON:-python3}
if command -v steer-audio >/dev/null 2>&1; then CLI=(steer-audio); else CLI=("$PY" -m steer_audio.cli); fi
if [ -z "${METHODS:-}" ]; then
  METHODS=$("$PY" -c "from steer_audio.steer.methods import names; print(' '.join(names()))")
fi
method_args=()
for m in $METHODS; do method_args+=(--method "$m"); done
extra=()
[ -n "${LIMIT:-}" ] && extra+=(--limit "$LIMIT")
[ -n "${DTYPE:-}" ] && extra+=(--dtype "$DTYPE")
mkdir -p "$ROOT"
runs=()
for neg in $NEGATIVES; do
  runs+=("$ROOT/$neg")
  [ -n "${REPORT_ONLY:-}" ] && continue
  echo "== $MODEL, negative $neg -> $ROOT/$neg" >&2
  start=$(date +%s)
  "${CLI[@]}" evaluate --model "$MODEL" --data "$BENCH" --out "$ROOT/$neg" --negative "$neg" \
    --device "$DEVICE" --batch-size "$BATCH" --k "$K" --k-sweep "$K_SWEEP" --seeds "$SEEDS" \
    --grid "$GRID" "${method_args[@]}" "${extra[@]}" > "$ROOT/$neg.stdout"
  echo "   $(( $(date +%s) - start )) s; $(tail -1 "$ROOT/$neg.stdout")" >&2
done
"$PY" -m steer_audio.report --out "$ROOT/results.md" --title "$(basename "$MODEL") at scale: every method x every negative" "${runs[@]}"
