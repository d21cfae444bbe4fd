#!/usr/bin/env bash
# Train several recipes of an embedded model at once on one GPU, then score each on the calibration and
# test splits (and, with HELDOUT set to a held-out bench folder, on its "heldout" split).
#   RECIPES=scripts/gpu_mini/recipes.txt RUNS=/tmp/sweep bash scripts/gpu_mini/sweep.sh
#   MODEL=qmini RECIPES=recipes/qmini/seeds.txt HELDOUT=$STEER_AUDIO_CACHE/heldout bash scripts/gpu_mini/sweep.sh
# Each line of RECIPES is "name<TAB>train-mini options". Every run gets the shared options below
# (--device cuda, seed and batch as in the line). The recipe is chosen on calibration (see README);
# test numbers are printed for every run so that nothing is hidden, but never used to choose.
# Writes $RUNS/<name>/{projector.safetensors,recipe.json,calib/summary.json,test/summary.json} and
# $RUNS/sweep.jsonl; with $OUT set, also $OUT/sweep.tar and $OUT/sweep.jsonl.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY="${PY:-python3}"
RECIPES="${RECIPES:-scripts/gpu_mini/recipes.txt}"
RUNS="${RUNS:-/tmp/sweep}"
BENCH="${BENCH:-${STEER_AUDIO_CACHE:?set STEER_AUDIO_CACHE}/listen-bench}"
DEVICE="${DEVICE:-cuda}"
MODEL="${MODEL:-mini}"
HELDOUT="${HELDOUT:-}"
LIMIT="${EVAL_LIMIT:+--limit $EVAL_LIMIT}"  # EVAL_LIMIT=N: first N base items per template (dry runs)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p "$RUNS"
# one encoder pass for all runs: a 1-step run builds the training + calibration-probe feature cache
if [ ! -f "$RUNS/encoder_cache.safetensors" ]; then
  rm -rf "$RUNS/warm"
  $PY -m steer_audio.cli_mini train-mini --model "$MODEL" --data "$BENCH" --out "$RUNS/warm" --steps 1 \
    --device "$DEVICE" >"$RUNS/warm.log" 2>&1 || { cat "$RUNS/warm.log"; exit 1; }
  cp "$RUNS/warm/encoder_cache.safetensors" "$RUNS/encoder_cache.safetensors"
fi
pids=()
while IFS=$'\t' read -r name opts; do
  [ -z "$name" ] || [ "${name:0:1}" = "#" ] && continue
  mkdir -p "$RUNS/$name"
  [ -f "$RUNS/$name/encoder_cache.safetensors" ] || cp "$RUNS/encoder_cache.safetensors" "$RUNS/$name/"
  resume=""; [ -f "$RUNS/$name/state.json" ] && resume="--resume"
  # shellcheck disable=SC2086
  ( t0=$(date +%s); $PY -m steer_audio.cli_mini train-mini --model "$MODEL" --data "$BENCH" \
      --out "$RUNS/$name" --device "$DEVICE" $resume $opts >"$RUNS/$name/train.log" 2>&1
    echo $(( $(date +%s) - t0 )) >"$RUNS/$name/wall_s" ) &
  pids+=($!)
done <"$RECIPES"
for p in "${pids[@]}"; do wait "$p"; done
: >"$RUNS/sweep.jsonl"
while IFS=$'\t' read -r name opts; do
  [ -z "$name" ] || [ "${name:0:1}" = "#" ] && continue
  if [ ! -f "$RUNS/$name/projector.safetensors" ]; then
    echo "{\"name\": \"$name\", \"failed\": true}" >>"$RUNS/sweep.jsonl"; tail -5 "$RUNS/$name/train.log"; continue
  fi
  for split in calib test; do
    [ -f "$RUNS/$name/$split/summary.json" ] && continue
    $PY -m steer_audio.cli_mini eval-mini --model "$MODEL" --data "$BENCH" \
      --weights "$RUNS/$name/projector.safetensors" --split $split --out "$RUNS/$name/$split" \
      --device "$DEVICE" $LIMIT >"$RUNS/$name/eval-$split.log" 2>&1 &
    [ "$DEVICE" = cpu ] && wait  # one model in memory at a time on a CPU machine
  done
  if [ -n "$HELDOUT" ] && [ ! -f "$RUNS/$name/heldout/summary.json" ]; then
    $PY -m steer_audio.cli_mini eval-mini --model "$MODEL" --data "$HELDOUT" \
      --weights "$RUNS/$name/projector.safetensors" --split heldout --out "$RUNS/$name/heldout" \
      --device "$DEVICE" $LIMIT >"$RUNS/$name/eval-heldout.log" 2>&1 &
    [ "$DEVICE" = cpu ] && wait
  fi
done <"$RECIPES"
wait
while IFS=$'\t' read -r name opts; do
  [ -z "$name" ] || [ "${name:0:1}" = "#" ] && continue
  [ -f "$RUNS/$name/test/summary.json" ] || continue
  $PY - "$RUNS/$name" "$name" "$opts" >>"$RUNS/sweep.jsonl" <<'PYEOF'
import json, sys, hashlib, pathlib
run, name, opts = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
row = {"name": name, "opts": opts, "wall_s": float((run / "wall_s").read_text().split()[-1])}
for split in ("calib", "test", "heldout"):
    if not (run / split / "summary.json").is_file():
        continue
    s = json.loads((run / split / "summary.json").read_text())["by_condition"]
    row[split] = {k: [v["n"], round(v["accuracy"], 3), round(v["prior_follow"], 3)] for k, v in s.items()}
    if "misleading" in s:
        row[split + "_gap"] = round(s["neutral"]["accuracy"] - s["misleading"]["accuracy"], 3)
row["projector_sha256"] = hashlib.sha256((run / "projector.safetensors").read_bytes()).hexdigest()
print(json.dumps(row))
PYEOF
done <"$RECIPES"
cat "$RUNS/sweep.jsonl"
if [ -n "${OUT:-}" ]; then
  cp "$RUNS/sweep.jsonl" "$OUT/"
  tar -C "$RUNS" -cf "$OUT/sweep.tar" --exclude='*encoder_cache*' --exclude='checkpoint.safetensors' \
    --exclude='warm' .
fi
