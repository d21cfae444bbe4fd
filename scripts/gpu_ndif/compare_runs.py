"""Compare two steer-audio run directories (local vs --remote); prints one JSON object.

    python compare_runs.py LOCAL_DIR REMOTE_DIR

Rules (those of tests/test_ndif_integration.py): `meta.json` is skipped (command, run dir, remote flag, times);
`summary.json` is compared without `run_dir` and `model.remote`; every other file byte for byte, safetensors by
tensor bytes and header *content* (safetensors 0.8 writes `__metadata__` keys in varying order). A safetensors
file that differs is opened (torch) and each differing tensor gets its max |a - b| and whether every element is
within bf16 rounding (|a - b| <= 2^-7 max(|a|, |b|) + 1e-6); a JSON file that differs gets its differing keys.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from steer_audio.io import same_artifact  # the rule the ndif tests use (run with the client's PYTHONPATH)

VOLATILE = {"meta.json"}


def _summary(p: Path) -> dict:
    s = json.loads(p.read_text())
    s.pop("run_dir", None)
    if isinstance(s.get("model"), dict):
        s["model"].pop("remote", None)
    return s


def _tensor_diff(a: Path, b: Path) -> dict:
    try:
        from safetensors.torch import load_file
    except ImportError as e:
        return {"error": f"cannot open: {e}"}
    ta, tb = load_file(str(a)), load_file(str(b))
    out = {}
    for k in sorted(set(ta) | set(tb)):
        if k not in ta or k not in tb:
            out[k] = "only in one"
            continue
        x, y = ta[k], tb[k]
        if x.shape != y.shape or x.dtype != y.dtype:
            out[k] = f"shape/dtype {tuple(x.shape)} {x.dtype} vs {tuple(y.shape)} {y.dtype}"
            continue
        if x.dtype.is_floating_point:
            xf, yf = x.float(), y.float()
            d = (xf - yf).abs()
            if d.max().item() == 0:
                continue
            tol = 2.0**-7 * torch_max(xf.abs(), yf.abs()) + 1e-6
            out[k] = {
                "max_abs_diff": d.max().item(),
                "max_abs": xf.abs().max().item(),
                "within_bf16_rounding": bool((d <= tol).all().item()),
                "n_differ": int((d > 0).sum().item()),
                "n": x.numel(),
            }
        elif not bool((x == y).all()):
            out[k] = {"n_differ": int((x != y).sum().item()), "n": x.numel()}
    return out


def torch_max(a, b):
    import torch

    return torch.maximum(a, b)


def _json_diff(a: Path, b: Path) -> list[str]:
    try:
        x, y = json.loads(a.read_text()), json.loads(b.read_text())
    except ValueError:
        return ["not JSON"]
    if isinstance(x, dict) and isinstance(y, dict):
        return sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
    return ["differs"]


def compare(local: Path, remote: Path) -> dict:
    fa = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
    fb = sorted(str(p.relative_to(remote)) for p in remote.rglob("*") if p.is_file())
    res: dict = {
        "rule": "byte-for-byte (safetensors: tensor bytes + header content); meta.json skipped; "
        "summary.json without run_dir / model.remote",
        "files_local": len(fa),
        "files_remote": len(fb),
        "only_local": sorted(set(fa) - set(fb)),
        "only_remote": sorted(set(fb) - set(fa)),
        "compared": 0,
        "identical": [],
        "differ": {},
    }
    for rel in sorted(set(fa) & set(fb)):
        if Path(rel).name in VOLATILE:
            continue
        a, b = local / rel, remote / rel
        res["compared"] += 1
        if Path(rel).name == "summary.json":
            same = _summary(a) == _summary(b)
        else:
            same = same_artifact(a, b)
        if same:
            res["identical"].append(rel)
        elif a.suffix == ".safetensors":
            res["differ"][rel] = _tensor_diff(a, b)
        elif a.suffix == ".json":
            res["differ"][rel] = {"keys": _json_diff(a, b)}
        else:
            res["differ"][rel] = "bytes differ"
    res["all_identical"] = bool(
        res["compared"] and not res["differ"] and not res["only_local"] and not res["only_remote"]
    )
    res["identical"] = len(res["identical"])
    return res


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(json.dumps(compare(Path(sys.argv[1]), Path(sys.argv[2])), sort_keys=True))


if __name__ == "__main__":
    main()
