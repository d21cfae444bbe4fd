#!/usr/bin/env bash
# Issue 7's table on the embedded model: every method (the cached ones and the forward-pass ones, head-level
# and avs) x every negative (silence, noise, shuffle, drop), accuracy per condition, McNemar vs baseline, alpha
# chosen on calibration. Writes results/mini/negatives.md. N_CALIB/N_TEST base items per template (x 4
# condition twins x 10 templates); the defaults (40 calibration, 40 test items) take ~35 min on 2 CPU cores,
# most of it in head-level and avs (forward passes per alpha).
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
BENCH="${BENCH:-data/listen-bench-neg}"
OUTS="${OUTS:-runs/negatives}"
steer-audio bench --out "$BENCH" --n-train 0 --n-calib "${N_CALIB:-1}" --n-test "${N_TEST:-1}" >/dev/null
for neg in silence noise shuffle drop; do
  steer-audio evaluate --model mini --data "$BENCH/listen-bench.json" --negative "$neg" --out "$OUTS/$neg" \
    --method baseline --method head-guided --method single-layer --method aad --method contrastive-options \
    --method head-level --method avs --k 8 --k-sweep 8 --seeds 5 --grid 0,1,2,4,8,16 --batch-size 8 >/dev/null
done
python - "$OUTS" <<'PY'
import json, sys
from pathlib import Path

outs = Path(sys.argv[1])
rows = ["| negative | method | alpha | accuracy | neutral | misleading | consistent | silence | prior followed | McNemar p |",
        "|---|---|---|---|---|---|---|---|---|---|"]
for neg in ("silence", "noise", "shuffle", "drop"):
    s = json.loads((outs / neg / "summary.json").read_text())
    for r in s["table"]:
        if r["method"].startswith("control/"):
            continue
        c = r.get("by_condition", {})
        p = r.get("mcnemar_vs_baseline", {}).get("p_value")
        cells = [f"{100 * c[k]:.1f}" if k in c else "–" for k in ("neutral", "misleading", "consistent", "silence")]
        rows.append(f"| {neg} | {r['method']} | {r.get('alpha', '')} | {100 * r['accuracy']:.1f} | " + " | ".join(cells)
                    + f" | {100 * r.get('prior_follow_misleading', float('nan')):.1f} | {'' if p is None else f'{p:.3g}'} |")
n = s["splits"]
text = (f"# mini: methods x negatives on listen-bench (n_calib = {n['n_calib']}, n_test = {n['n_eval']})\n\n"
        "Made by `bash scripts/negatives_table.sh` (alpha chosen on the calibration split; accuracy on the test split).\n\n"
        + "\n".join(rows) + "\n")
Path("results/mini/negatives.md").write_text(text)
print(text)
PY
