"""Artifact I/O: atomic writes, safetensors for tensors, JSON / JSONL for metadata; never Python object serialisation."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .errors import SteerAudioError

# File names of every artifact, kept in one place.
META = "meta.json"
CAPTURE_INDEX = "capture_index.json"
CAPTURE_SHARD = "capture-{:05d}.safetensors"
READOUT = "readout.safetensors"
HEAD_SCORES = "head_scores.safetensors"
HEADS = "heads.json"
SUMMARY = "summary.json"
PREDICTIONS = "predictions.jsonl"
MMAU_PREDICTIONS = "mmau_predictions.json"
REPORT = "report.md"
SPLITS = "splits.json"
LISTENING = "listening.jsonl"


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Write `path` atomically: `write(tmp)` writes a temporary file beside it, which then replaces `path`
    (a reader sees the old file or the new one, never half of one; an error leaves the old file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """`with atomic_path(p) as tmp: writer(tmp)` for writers that take a path (torch, safetensors, numpy):
    `tmp` replaces `p` when the block ends without an error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def copy_file(src: Path, dst: Path) -> None:
    """Copy `src` to `dst` atomically."""
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def write_text(path: Path, text: str) -> None:
    def w(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, w)


def write_bytes(path: Path, data: bytes) -> None:
    def w(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, w)


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_text(path, "".join(json.dumps(r, default=_json_default) + "\n" for r in rows))


def same_artifact(a: Path, b: Path) -> bool:
    """Whether two written artifacts are the same: byte equality; for safetensors, equal tensor bytes and equal
    header *content* (safetensors 0.8 writes `__metadata__` from a Rust HashMap, so with 2+ metadata keys their
    order varies from process to process)."""
    x, y = Path(a).read_bytes(), Path(b).read_bytes()
    if x == y:
        return True
    if Path(a).suffix != ".safetensors":
        return False
    nx, ny = struct.unpack("<Q", x[:8])[0], struct.unpack("<Q", y[:8])[0]
    return json.loads(x[8 : 8 + nx]) == json.loads(y[8 : 8 + ny]) and x[8 + nx :] == y[8 + ny :]


def read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as e:
        raise SteerAudioError(f"file not found: {path}") from e
    except json.JSONDecodeError as e:
        raise SteerAudioError(f"malformed JSON in {path}: line {e.lineno} column {e.colno}: {e.msg}") from e


def read_jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def save_tensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not Path(path).exists():
        raise SteerAudioError(f"file not found: {path}")
    return load_file(str(path))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=_json_default).encode()).hexdigest()


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
