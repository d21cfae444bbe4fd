"""Results of scripts/gpu_ndif/run.sh, kept as it goes (stdlib only: runs before anything is installed).

python record.py OUT.json KEY JSON-VALUE    set one key (atomic rewrite)
python record.py OUT.json --md OUT.md       render the Markdown summary
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def set_key(path: Path, key: str, raw: str) -> None:
    data = _load(path)
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    data[key] = value
    data.setdefault("order", [])
    if key not in data["order"]:
        data["order"].append(key)
    data["updated_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _write(path, json.dumps(data, indent=1, sort_keys=False) + "\n")


def _fmt(v: object) -> str:
    if isinstance(v, dict | list):
        s = json.dumps(v, sort_keys=True)
        return s if len(s) < 600 else s[:600] + " …"
    return str(v)


def render(path: Path, md: Path) -> None:
    data = _load(path)
    lines = ["# Self-hosted NDIF on the device: remote vs local", ""]
    cfg = data.get("config", {})
    lines.append(
        f"model `{cfg.get('model')}`, profile `{cfg.get('profile')}`, device {cfg.get('device')}, "
        f"dtype {cfg.get('dtype')}, batch {cfg.get('batch_size')}, netns {data.get('netns')}, "
        f"git {cfg.get('git')}; updated {data.get('updated_utc')}"
    )
    lines.append("")
    bench = data.get("bench", {})
    if isinstance(bench, dict) and bench.get("rows"):
        lines += ["## Measurements (benchmarks/ndif_overhead.py)", "", "| measurement | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in bench["rows"]]
        lines.append("")
    lines += ["## Steps", "", "| key | value |", "|---|---|"]
    for k in data.get("order", []):
        if k in ("config",) or (k == "bench" and isinstance(bench, dict) and bench.get("rows")):
            continue
        lines.append(f"| {k} | {_fmt(data[k]).replace('|', '/')} |")
    _write(md, "\n".join(lines) + "\n")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[2] == "--md":
        render(Path(sys.argv[1]), Path(sys.argv[3]))
    elif len(sys.argv) == 4:
        set_key(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
