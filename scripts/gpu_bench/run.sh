#!/usr/bin/env bash
# One lent-GPU call (<= 6 min): issue 18's capture levers (10 s and 1-30 s mix, each lever alone and all),
# the whole Table 1-3 protocol on 1000 items, the forward-pass methods (head-level, avs) batched vs per
# configuration, steered vs unsteered generation at batch 16 (issue 17), and the card -> $OUT/gpu_bench.{json,md,log}.
#
# On the H200 (the coordinator has installed the wheels into /tmp/site and set PYTHONPATH=/tmp/site:$PWD):
#     bash scripts/gpu_bench/run.sh
# Dry run of the same code paths on this CPU with the tiny model (arguments, sections, tables):
#     OUT=/tmp/smoke bash scripts/gpu_bench/run.sh --cpu-smoke
# Every row runs under its own time limit inside a suite budget; a row that fails or times out is reported as
# such in the JSON and the table, and the rest still run. Extra arguments go to benchmarks/gpu_throughput.py.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && [[ " $* " == *" --cpu-smoke "* ]] && PY=.venv/bin/python
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH=${PYTHONPATH:-$PWD}
BUDGET=${BUDGET:-300}
# the hard stop: the suite budget plus time for the last row to notice it and the JSON to be written
timeout --signal=INT --kill-after=15 $((BUDGET + 40)) \
  "$PY" benchmarks/gpu_throughput.py --suite --out "$OUT" --budget "$BUDGET" --gen-tokens 32 "$@" \
  2>&1 | tee "$OUT/gpu_bench.log"
rc=${PIPESTATUS[0]}
echo "gpu_bench exit status $rc; results: $OUT/gpu_bench.json $OUT/gpu_bench.md"
exit "$rc"
