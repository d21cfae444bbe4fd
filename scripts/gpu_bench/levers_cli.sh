#!/usr/bin/env bash
# On the lent GPU (wheels installed into /tmp/site, PYTHONPATH=/tmp/site:$PWD): `steer-audio discover` on the demo
# data with the default --capture-levers auto (the bit-identical levers on a GPU) and with --capture-levers none;
# prints each run's wall time and the file-by-file comparison (scripts/gpu_ndif/compare_runs.py's rules).
#     OUT=$OUT bash scripts/gpu_bench/levers_cli.sh
# Dry run on this CPU (auto turns nothing on there): MODEL=tiny DEVICE=cpu DTYPE=float32 PYTHON=.venv/bin/python ...
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
MODEL=${MODEL:-qwen2-audio-7b-random} DEVICE=${DEVICE:-cuda} DTYPE=${DTYPE:-bfloat16}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
RUNS=/tmp/levers-runs
rm -rf "$RUNS" && mkdir -p "$RUNS"
DPATH=$("$PY" -c 'import sys; from pathlib import Path; from steer_audio.data.demo import write_demo
print(write_demo(Path(sys.argv[1])))' "$RUNS/data" | tail -1)
for lv in auto none; do
  t=$(date +%s%N)
  "$PY" -c 'from steer_audio.cli import main; main()' discover --model "$MODEL" --data "$DPATH" \
    --device "$DEVICE" --dtype "$DTYPE" --batch-size 16 --draws 20 --capture-levers "$lv" --out "$RUNS/$lv" \
    >"$RUNS/$lv.stdout" 2>"$RUNS/$lv.stderr"
  rc=$?
  echo "discover --capture-levers $lv: exit $rc, $(( ($(date +%s%N) - t) / 1000000 )) ms"
  [ $rc = 0 ] || tail -20 "$RUNS/$lv.stderr"
done
"$PY" scripts/gpu_ndif/compare_runs.py "$RUNS/auto" "$RUNS/none" | tee "$OUT/levers_cli.json"
