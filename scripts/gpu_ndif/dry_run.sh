#!/usr/bin/env bash
# CPU dry run of the device path, HERE: prepare.sh for this machine's Python (cp311) with `.venv` as "the image",
# copy the parts one by one into a stash (as the device calls do), then run.sh with the cpu profile and the tiny
# random model, without a network namespace by default (what the GPU machine will do), all listeners checked to
# be on 127.0.0.1. Results in $OUT (default /tmp/ndif-dry-out): ndif_gpu.{json,md,log}.
#   scripts/gpu_ndif/dry_run.sh [--netns none|auto] [--skip-prepare]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
NETNS=none PREP=1
while [ $# -gt 0 ]; do
  case "$1" in
    --netns) NETNS=$2; shift 2 ;;
    --skip-prepare) PREP=0; shift ;;
    *) echo "dry_run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
PARTS=/tmp/ndif-dry-parts STASH=/tmp/ndif-dry-stash OUTD="${OUT:-/tmp/ndif-dry-out}"
[ -x "$REPO/.venv/bin/python" ] || { echo "dry_run.sh: needs .venv (scripts/install.sh)" >&2; exit 1; }

if [ "$PREP" = 1 ]; then
  scripts/gpu_ndif/prepare.sh --python-version 3.11 --have "$REPO/.venv/bin/python" --out "$PARTS"
fi
# one part per "call", the index with the first, as scripts/gpu_ndif/README.md does on the device
rm -rf "$STASH" "$OUTD" && mkdir -p "$STASH" "$OUTD"
first=1
for p in "$PARTS"/part-*; do
  if [ $first = 1 ]; then cp "$PARTS/index.json" "$STASH/"; first=0; fi
  cp "$p" "$STASH/"
  echo "[dry_run] copied $(basename "$p") ($(du -m "$p" | cut -f1) MiB) into $STASH"
done
rm -rf /tmp/ndif-dry-site
OUT="$OUTD" scripts/gpu_ndif/run.sh --stash "$STASH" --profile cpu --model tiny --device cpu --dtype float32 \
  --batch-size 16 --netns "$NETNS" --site /tmp/ndif-dry-site --server-python "$REPO/.venv/bin/python" \
  --client-python "$REPO/.venv/bin/python" --client-pythonpath "$REPO" --examples 32 --reps 5 --budget 900
echo "[dry_run] results: $OUTD/ndif_gpu.md"
cat "$OUTD/ndif_gpu.md"
