#!/usr/bin/env bash
# One lent H200, after the chunks of `.devpack` (qmini + full listen-bench + heldout) are in /tmp/stash and
# those of `.devpack-mini` (mini cache + Gemma GGUF) in /tmp/stash-m, and the wheels in /tmp/site:
#   bash scripts/gpu_scale/session.sh unpack     # both caches into /tmp/sa-cache
#   bash scripts/gpu_scale/session.sh train      # 2 more mini seeds, in the background (setsid)
#   bash scripts/gpu_scale/session.sh queue [P] [REGEX]  # jobs.sh's at-scale jobs (those whose name matches
#                                                # REGEX, all by default), P at a time, in the background
#   bash scripts/gpu_scale/session.sh broad      # listen-broad (in the qmini pack, or its own chunks in /tmp/stash-b), then the qmini
#                                                # broad-audio seeds (recipes/qmini/seeds_broad.txt), in the background
#   bash scripts/gpu_scale/session.sh generate [MODEL NAME]  # issue 17: the generate protocol (greedy, MMAU string
#                                                # match) beside the logits one, whole listen-bench, in the background
#   bash scripts/gpu_scale/session.sh progress   # finished jobs, errors, GPU use
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
    rm -rf /tmp/sa-cache/mini && mv /tmp/sa-m/mini /tmp/sa-cache/mini && ls /tmp/sa-cache
    python3 -m steer_audio.bench.heldout $BENCH /tmp/sa-cache/heldout/listen-bench.json /tmp/sa-cache/heldout-check.json ;;
  train)    # two more mini seeds (the qmini projectors F-s0..F-s2 are in the tree: assets/qmini, results/qmini/gpu)
    bg mtrain "MODEL=mini RECIPES=scripts/gpu_scale/mini_seeds.txt HELDOUT=/tmp/sa-cache/heldout RUNS=$G/msweep bash scripts/gpu_mini/sweep.sh" ;;
  broad)    # issue 14: qmini trained on broader audio, scored on calib, test and listen-heldout
    if [ -d /tmp/stash-b ]; then python3 scripts/gpu_mini/unpack.py --stash /tmp/stash-b --dest /tmp/sa-cache || exit 1; fi
    bg qbroad "MODEL=qmini RECIPES=recipes/qmini/seeds_broad.txt HELDOUT=/tmp/sa-cache/heldout RUNS=$G/qbroad bash scripts/gpu_mini/sweep.sh" ;;
  generate) # the paper's Table 1 methods + the others that decode, generate protocol, qmini F-s0 by default
    model=${2:-qmini} name=${3:-qmini-F0}; mkdir -p $G/scale/$name
    m=""; for x in baseline head-guided single-layer random-layer head-level aad contrastive-options avs; do m="$m --method $x"; done
    bg "gen-$name" "python3 -m steer_audio.cli evaluate --model $model --data $BENCH --out $G/scale/$name/generate \
      --negative silence --device cuda --batch-size 32 --k 20 --k-sweep 20 --seeds 10 --grid 0,0.5,1,2,4,8,16 $m \
      --protocol generate --max-new-tokens 16" ;;
  queue)    # the job list of jobs.sh, P at a time, in priority order (xargs keeps the order)
    P=${2:-6} pat=${3:-.}
    bash scripts/gpu_scale/jobs.sh | awk -v re="$pat" '$1 ~ re' > $G/jobs.txt
    bg queue "OMP_NUM_THREADS=2 xargs -P $P -L 1 bash scripts/gpu_scale/job.sh < $G/jobs.txt" ;;
  progress)
    cat $G/jobs.done 2>/dev/null; ls $G/scale/*/ 2>/dev/null | head -50 | tr '\n' ' '; echo
    for f in $G/scale/*/*.stderr; do [ -s "$f" ] && { echo "== $f"; tail -c 300 "$f"; echo; }; done 2>/dev/null | tail -40
    nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader; uptime ;;
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
    for d in $G/msweep $G/qbroad $G/scale/*/; do [ -d "$d" ] || continue; n=$(basename "$d"); tar -C "$(dirname "$d")" "${ex[@]}" -czf "$OUT/$n.tgz" "$n" 2>/dev/null; done
    tar -C $G -czf $OUT/logs.tgz $(cd $G && ls *.log *.rc *.txt jobs.done 2>/dev/null)
    ls -la $OUT ;;
esac
