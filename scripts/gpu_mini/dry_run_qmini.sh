#!/usr/bin/env bash
# The qmini device path, end to end on this CPU with a tiny bench and 2 training steps:
#   tiny listen-bench + listen-heldout -> pack.py --model qmini -> chunks copied one by one into a stash
#   (as the upload calls do) -> unpack.py (sha256 of every chunk, FLAC -> wav checked, GGUF dequantised
#   and checked against this machine's cache) -> sweep.sh (warm encode, train 2 steps, eval calib, test,
#   heldout with EVAL_LIMIT=1), all from a copy of the tracked tree, as the device sees it.
# Usage: bash scripts/gpu_mini/dry_run_qmini.sh      (W=/tmp/qmini-dry by default; ~1.2 GB of disk)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PY:-$REPO/.venv/bin/python}"
W="${W:-/tmp/qmini-dry}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
rm -rf "$W"; mkdir -p "$W"
cd "$REPO"
t0=$(date +%s)
$PY -m steer_audio.cli_mini bench --out "$W/listen-bench" --n-train 1 --n-calib 1 --n-test 1 --no-check-tokens >/dev/null
$PY -m steer_audio.cli_mini bench --heldout --out "$W/heldout" --no-check-tokens >/dev/null
$PY scripts/gpu_mini/pack.py --model qmini --bench "$W/listen-bench" --extra-bench "$W/heldout" \
  --out "$W/devpack" --chunk-mib 56
echo "packed: $(( $(date +%s) - t0 )) s"
# the device side: the tracked tree only (what `run` carries), chunks uploaded into .devstash one by one
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | (mkdir -p "$W/tree" && tar -C "$W/tree" -xf -)
mkdir -p "$W/tree/.devstash"
cp "$W/devpack/index.json" "$W/tree/.devstash/"
for p in "$W"/devpack/part-*; do cp "$p" "$W/tree/.devstash/"; done
cd "$W/tree"
export PYTHONPATH="$W/tree"
$PY scripts/gpu_mini/unpack.py --stash .devstash --dest "$W/sa-cache"
echo "unpacked: $(( $(date +%s) - t0 )) s"
STEER_AUDIO_CACHE="$W/sa-cache" MODEL=qmini RECIPES=recipes/qmini/dry.txt HELDOUT="$W/sa-cache/heldout" \
  RUNS="$W/sweep" DEVICE=cpu EVAL_LIMIT=1 PY="$PY" bash scripts/gpu_mini/sweep.sh
test -s "$W/sweep/sweep.jsonl" && grep -q '"heldout"' "$W/sweep/sweep.jsonl"
echo "dry run ok: $(( $(date +%s) - t0 )) s"
