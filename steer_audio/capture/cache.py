"""The capture cache: safetensors shards (one per batch) and a JSON index keyed by example id.

Per example and pass (audio "a", negative "n"), at the final prompt position t:
  resid_a, resid_n  [L, d]      residual after every decoder layer (last one before the final norm)
  dz                [L, H, dh]  z(x) - z(x0): per-head attention outputs before o_proj, audio minus negative
  mass_a, mass_n    [L, H]      audio attention mass a_{l,h} (float32)
  logits_a, logits_n [O]        candidate-token logits (float32), O = MAX_OPTIONS, padded with -inf
  cand              [O]         candidate token ids (long), padded with -1
A rerun skips examples already captured (resume by example id); an example recorded as missing (its audio
absent or unreadable) is tried again on every rerun, so a corrected --audio-root or a restored file fills it in."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import SteerAudioError
from ..io import CAPTURE_INDEX, CAPTURE_SHARD, READOUT, load_tensors, read_json, save_tensors, write_json

FIELDS = ("resid_a", "resid_n", "dz", "mass_a", "mass_n", "logits_a", "logits_n", "cand")


@dataclass
class CaptureData:
    """Stacked cache tensors for a list of example ids (in that order)."""

    ids: list[str]
    t: dict[str, torch.Tensor]
    n_options: list[int]

    def __getitem__(self, k: str) -> torch.Tensor:
        return self.t[k]

    def subset(self, ids: list[str]) -> CaptureData:
        pos = {i: k for k, i in enumerate(self.ids)}
        missing = [i for i in ids if i not in pos]
        if missing:
            raise SteerAudioError(
                f"{len(missing)} example(s) are not in the capture cache, e.g. {missing[:3]}"
            )
        idx = torch.tensor([pos[i] for i in ids], dtype=torch.long)
        return CaptureData(
            list(ids), {k: v[idx] for k, v in self.t.items()}, [self.n_options[pos[i]] for i in ids]
        )


class CaptureCache:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.index_path = self.root / CAPTURE_INDEX
        if self.index_path.exists():
            self.index: dict[str, Any] = read_json(self.index_path)
        else:
            self.index = {"key": None, "examples": {}, "missing": {}, "shards": 0}

    # -- identity ------------------------------------------------------------------------------------------
    def check(self, key: dict[str, Any]) -> None:
        """Raise if the cache was made with another key (model/data/prompt/negative/seed); writes nothing."""
        old = self.index["key"]
        if old is None:
            return
        diff = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
        if diff:
            details = "; ".join(f"{k}: cached {_short(old.get(k))} vs now {_short(key.get(k))}" for k in diff)
            raise SteerAudioError(
                f"capture cache {self.root} was made with different settings ({details}): "
                "rerun with the cached settings, or give another --out"
            )

    def bind(self, key: dict[str, Any]) -> None:
        """Refuse to mix runs: the cache is bound to one model/data/prompt/negative key."""
        self.check(key)
        if self.index["key"] is None:
            self.index["key"] = key

    @property
    def done(self) -> set[str]:
        """Examples captured already (those recorded as missing are not done: a rerun tries them again)."""
        return set(self.index["examples"])

    # -- writing -------------------------------------------------------------------------------------------
    def add_shard(self, ids: list[str], tensors: dict[str, torch.Tensor], info: list[dict[str, Any]]) -> None:
        k = int(self.index["shards"])
        name = CAPTURE_SHARD.format(k)
        save_tensors(self.root / name, tensors)
        for row, (i, inf) in enumerate(zip(ids, info, strict=True)):
            self.index["examples"][i] = {"shard": name, "row": row, **inf}
            self.index["missing"].pop(i, None)  # found on a rerun
        self.index["shards"] = k + 1
        self.flush()

    def add_missing(self, ex_id: str, reason: str) -> None:
        self.index["missing"][ex_id] = reason
        self.flush()

    def flush(self) -> None:
        write_json(self.index_path, self.index)

    def save_readout(
        self, token_ids: list[int], w: torch.Tensor, norm: torch.Tensor, eps: float, kind: str
    ) -> None:
        save_tensors(
            self.root / READOUT,
            {"token_ids": torch.tensor(token_ids), "w": w.float(), "norm": norm.float()},
            # one metadata key: safetensors orders several keys differently from process to process
            metadata={"readout": json.dumps({"eps": repr(eps), "norm_kind": kind}, sort_keys=True)},
        )

    # -- reading -------------------------------------------------------------------------------------------
    def load(self, ids: list[str] | None = None) -> CaptureData:
        ex = self.index["examples"]
        ids = list(ex) if ids is None else [i for i in ids if i in ex]
        shards: dict[str, dict[str, torch.Tensor]] = {}
        rows: dict[str, list[torch.Tensor]] = {f: [] for f in FIELDS}
        for i in ids:
            e = ex[i]
            if e["shard"] not in shards:
                shards[e["shard"]] = load_tensors(self.root / e["shard"])
            for f in FIELDS:
                rows[f].append(shards[e["shard"]][f][e["row"]])
        if not ids:
            raise SteerAudioError(f"the capture cache {self.root} holds none of the requested examples")
        return CaptureData(
            ids, {f: torch.stack(v) for f, v in rows.items()}, [ex[i]["n_options"] for i in ids]
        )

    def readout(self) -> Readout:
        from safetensors import safe_open

        path = self.root / READOUT
        if not path.exists():
            raise SteerAudioError(f"{path} is missing: rerun the capture")
        t = load_tensors(path)
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
        info = json.loads(meta["readout"])
        return Readout(t["token_ids"].tolist(), t["w"], t["norm"], float(info["eps"]), info["norm_kind"])


def _short(v: Any, n: int = 200) -> str:
    text = repr(v)
    return text if len(text) <= n else text[: n - 3] + "..."


@dataclass
class Readout:
    """Final norm + the lm_head rows of every candidate token: scores options from a residual h^L."""

    token_ids: list[int]
    w: torch.Tensor
    norm: torch.Tensor
    eps: float
    kind: str

    def rows(self, cand_ids: torch.Tensor) -> torch.Tensor:
        pos = {t: i for i, t in enumerate(self.token_ids)}
        return torch.tensor([[pos.get(int(t), 0) for t in row] for row in cand_ids])
