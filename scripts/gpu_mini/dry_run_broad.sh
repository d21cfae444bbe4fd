#!/usr/bin/env bash
# The broad-training device call (recipes/qmini/seeds_broad.txt), end to end on this CPU:
#   the listen-broad pack (pack.py --benches-only, as made for the device) -> its chunks copied one by one
#   into .devstash-broad of a copy of the tree (as the upload calls do) -> unpack.py into a cache that
#   already holds the model (on the device: the unpacked main pack; here: this machine's qmini cache, a
#   tiny listen-bench and listen-heldout) -> sweep.sh with B-s0's line of seeds_broad.txt, only the path
#   moved to this dry run's cache and the schedule cut to 2 steps of batch 2 (EVAL_LIMIT=1).
# Usage: PACK=.devpack-broad bash scripts/gpu_mini/dry_run_broad.sh   (W=/tmp/broad-dry by default)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PY:-$REPO/.venv/bin/python}"
W="${W:-/tmp/broad-dry}"
PACK="$(cd "$REPO" && realpath "${PACK:-.devpack-broad}")"
QMINI="${QMINI:-${STEER_AUDIO_CACHE:-$HOME/.cache/steer_audio}/qmini}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
rm -rf "$W"; mkdir -p "$W/sa-cache"
cd "$REPO"
t0=$(date +%s)
ln -s "$QMINI" "$W/sa-cache/qmini"
$PY -m steer_audio.cli_mini bench --out "$W/sa-cache/listen-bench" --n-train 1 --n-calib 1 --n-test 1 >/dev/null
$PY -m steer_audio.cli_mini bench --heldout --out "$W/sa-cache/heldout" >/dev/null
# the device side: the tracked tree only (what `run` carries), chunks uploaded into .devstash-broad one by one
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | (mkdir -p "$W/tree" && tar -C "$W/tree" -xf -)
mkdir -p "$W/tree/.devstash-broad"
cp "$PACK/index.json" "$W/tree/.devstash-broad/"
for p in "$PACK"/part-*; do cp "$p" "$W/tree/.devstash-broad/"; done
cd "$W/tree"
export PYTHONPATH="$W/tree"
$PY scripts/gpu_mini/unpack.py --stash .devstash-broad --dest "$W/sa-cache"
echo "unpacked: $(( $(date +%s) - t0 )) s"
grep '^B-s0' recipes/qmini/seeds_broad.txt | sed -e "s|/tmp/sa-cache/|$W/sa-cache/|g" \
  -e 's/--steps 600/--steps 2/; s/--eval-every 300/--eval-every 2/; s/--batch-size 8/--batch-size 2/' \
  -e 's/--warmup 50/--warmup 1/; s/$/ --threads 2/' >"$W/dry_broad.txt"
cat "$W/dry_broad.txt"
STEER_AUDIO_CACHE="$W/sa-cache" MODEL=qmini RECIPES="$W/dry_broad.txt" HELDOUT="$W/sa-cache/heldout" \
  RUNS="$W/sweep" DEVICE=cpu EVAL_LIMIT=1 PY="$PY" bash scripts/gpu_mini/sweep.sh
test -s "$W/sweep/sweep.jsonl" && grep -q '"heldout"' "$W/sweep/sweep.jsonl"
"$PY" - "$W/sweep/B-s0/recipe.json" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["extra_train"] and r["extra_train"][0]["folder"] == "broad", r.get("extra_train")
assert r["config"]["extra_share"] == 0.5 and r["config"]["scoring"] == "first-token"
print("extra_train:", r["extra_train"])
PYEOF
echo "dry run ok: $(( $(date +%s) - t0 )) s"
