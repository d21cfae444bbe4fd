#!/usr/bin/env bash
# One at-scale job: bash scripts/gpu_scale/job.sh NAME MODEL DATA NEGATIVE K KSWEEP  (a line of jobs.sh)
# Waits (up to 10 min) for a projector that is still training, then `steer-audio evaluate` of every method into
# $G/scale/NAME; a rerun resumes the capture; a finished job is skipped.
set -uo pipefail
name=$1 model=$2 data=$3 neg=$4 k=$5 ksweep=$6
G=${G:-/tmp/gpu}; out=$G/scale/$name; mkdir -p "$(dirname "$out")"
[ -f "$out/summary.json" ] && exit 0
for _ in $(seq 120); do [[ "$model" != /* ]] || [ -f "$model/projector.safetensors" ] && break; sleep 5; done
methods=$(python3 -c "from steer_audio.steer.methods import names; print(' '.join('--method ' + n for n in names()))")
t0=$(date +%s)
# shellcheck disable=SC2086
python3 -m steer_audio.cli evaluate --model "$model" --data "$data" --out "$out" --negative "$neg" \
  --device cuda --batch-size "${BATCH:-32}" --k "$k" --k-sweep "$ksweep" --seeds "${SEEDS:-30}" \
  --grid "${GRID:-0,0.5,1,2,4,8,16}" $methods > "$out.stdout" 2> "$out.stderr"
rc=$?
echo "$name rc=$rc $(( $(date +%s) - t0 )) s" >> "$G/jobs.done"
exit $rc
