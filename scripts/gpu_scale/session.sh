#!/usr/bin/env bash
# One lent H200, after the chunks of `.devpack` (qmini + full listen-bench + heldout) are in /tmp/stash and
# those of `.devpack-mini` (mini cache + Gemma GGUF) in /tmp/stash-m, and the wheels in /tmp/site:
#   bash scripts/gpu_scale/session.sh unpack     # both caches into /tmp/sa-cache
#   bash scripts/gpu_scale/session.sh train      # qmini seeds + 2 more mini seeds, in the background (setsid)
#   bash scripts/gpu_scale/session.sh scale NAME MODEL [NEGATIVES]   # evaluate_all.sh in the background
#   bash scripts/gpu_scale/session.sh wait SECONDS   # until every background job is done or SECONDS pass
#   bash scripts/gpu_scale/session.sh collect    # tar of sweeps + results into $OUT
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH=/tmp/site:$PWD STEER_AUDIO_CACHE=/tmp/sa-cache HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
G=/tmp/gpu; mkdir -p $G/pids
BENCH=/tmp/sa-cache/listen-bench/listen-bench.json
bg() { local name=$1; shift; setsid bash -c "$* > $G/$name.log 2>&1; echo \$? > $G/$name.rc" & echo $! > $G/pids/$name; }
case "$1" in
  unpack)   # stops at the first failure: nothing is trained on a half-unpacked cache
    python3 scripts/gpu_mini/unpack.py --stash /tmp/stash --dest /tmp/sa-cache || exit 1
    python3 scripts/gpu_mini/unpack.py --stash /tmp/stash-m --dest /tmp/sa-m || exit 1
    rm -rf /tmp/sa-cache/mini && mv /tmp/sa-m/mini /tmp/sa-cache/mini && ls /tmp/sa-cache ;;
  train)
    # each chain trains its seeds, then evaluates every trained projector at scale (in parallel)
    EA="bash scripts/gpu_scale/evaluate_all.sh"
    bg qchain "MODEL=qmini RECIPES=recipes/qmini/seeds.txt HELDOUT=/tmp/sa-cache/heldout RUNS=$G/qsweep bash scripts/gpu_mini/sweep.sh;
      for s in L-s0 L-s1 L-s2; do [ -f $G/qsweep/\$s/projector.safetensors ] && $EA $G/qsweep/\$s $BENCH $G/scale/qmini-\$s > $G/scale-qmini-\$s.log 2>&1 & done; wait"
    bg mchain "MODEL=mini RECIPES=scripts/gpu_scale/mini_seeds.txt HELDOUT=/tmp/sa-cache/heldout RUNS=$G/msweep bash scripts/gpu_mini/sweep.sh;
      for s in p97nh40s1 p97nh40s2; do [ -f $G/msweep/\$s/projector.safetensors ] && $EA $G/msweep/\$s $BENCH $G/scale/mini-\$s > $G/scale-mini-\$s.log 2>&1 & done; wait"
    bg mini-p0 "$EA mini $BENCH $G/scale/mini-p0; python3 -m steer_audio.cli_mini eval-mini --model mini --data /tmp/sa-cache/heldout --split heldout --out $G/mini-p0-heldout --device cuda" ;;
  scale)
    name=$2 model=$3 negs=${4:-silence noise shuffle drop}
    bg "scale-$name" "NEGATIVES='$negs' bash scripts/gpu_scale/evaluate_all.sh $model $BENCH $G/scale/$name" ;;
  wait)
    end=$(( $(date +%s) + $2 ))
    while [ "$(date +%s)" -lt "$end" ]; do
      busy=0; for f in $G/pids/*; do [ -e "$f" ] || continue; n=$(basename "$f"); [ -f "$G/$n.rc" ] || busy=1; done
      [ $busy = 0 ] && break; sleep 10
    done
    for f in $G/pids/*; do [ -e "$f" ] || continue; n=$(basename "$f"); echo "$n rc=$(cat $G/$n.rc 2>/dev/null || echo running)"; done
    nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv ;;
  collect)
    ex=(--exclude='*encoder_cache*' --exclude='capture' --exclude='capture-*' --exclude='*checkpoint*' --exclude='warm')
    for d in $G/*/; do n=$(basename "$d"); tar -C $G "${ex[@]}" -czf "$OUT/$n.tgz" "$n" 2>/dev/null; done
    tar -C $G -czf $OUT/logs.tgz $(cd $G && ls *.log *.rc 2>/dev/null)
    ls -la $OUT ;;
esac
