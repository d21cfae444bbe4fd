#!/usr/bin/env bash
# The at-scale job list, in priority order (what matters most runs first, so a session that ends early still
# has the headline): every projector under the paper's digital silence, then the held-out check, then the
# matched noise floor, then noise, shuffle and drop. Prints one "NAME MODEL DATA NEGATIVE K KSWEEP" line per job.
#
# Fixed before any at-scale number came in (written 2026-12-01 23:16 UTC, commit 26294ea; the GPU ran from 23:27):
#   * projectors: mini (p0 = the shipped one, s1, s2 = two more seeds of its recipe); qmini (F-s0 shipped, F-s1,
#     F-s2: first-token scoring, no hint rows);
#   * K = 8 for mini (72 heads; the main job's K), K = 20 for qmini (the paper's K), sweep 4,8,12 / 10,20,30;
#   * alpha grid 0,0.5,1,2,4,8,16, 30 matched random-head sets, every method of the registry;
#   * alpha / layer / gate threshold chosen on the calibration split, real-audio items only, ties to the
#     smaller |alpha| (steer_audio/evaluate/protocol.py); the test split and listen-heldout scored once.
set -euo pipefail
G=${G:-/tmp/gpu}
LB=/tmp/sa-cache/listen-bench/listen-bench.json
HO=/tmp/sa-cache/heldout-check.json
declare -A MODEL=(
  [mini-p0]=mini [mini-s1]=$G/msweep/p97nh40s1 [mini-s2]=$G/msweep/p97nh40s2
  [qmini-F0]=qmini [qmini-F1]=$PWD/results/qmini/gpu/F-s1 [qmini-F2]=$PWD/results/qmini/gpu/F-s2
)
ORDER=(mini-p0 qmini-F0 qmini-F1 qmini-F2 mini-s1 mini-s2)
ks() { case $1 in mini*) echo "8 4,8,12" ;; *) echo "20 10,20,30" ;; esac; }
for p in "${ORDER[@]}"; do echo "$p/silence ${MODEL[$p]} $LB silence $(ks "$p")"; done
for p in "${ORDER[@]}"; do echo "$p/heldout-silence ${MODEL[$p]} $HO silence $(ks "$p")"; done
for neg in floor noise shuffle drop; do
  for p in "${ORDER[@]}"; do echo "$p/$neg ${MODEL[$p]} $LB $neg $(ks "$p")"; done
  [ "$neg" = floor ] && for p in "${ORDER[@]}"; do echo "$p/heldout-floor ${MODEL[$p]} $HO floor $(ks "$p")"; done
done
exit 0
