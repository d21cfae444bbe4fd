"""MMAU-format examples: any MMAU-style JSON (both test-mini revisions, listen-bench) or a local Hugging Face
`datasets` copy. Audio comes from an audio root folder the user supplies; nothing is fetched."""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SteerAudioError
from ..io import read_json, sha256_file, sha256_json

log = logging.getLogger(__name__)

_REQUIRED = ("id", "question", "choices", "answer")
#: options per item the scorers support (labels A..J; the capture cache pads to this many)
MAX_CHOICES = 10


@dataclass(eq=False)
class Example:
    id: str
    question: str
    #: choice texts, whitespace-stripped, in the file's order
    choices: tuple[str, ...]
    answer: str
    #: indices of choices equal to the answer (several when a file repeats the answer string)
    correct: frozenset[int]
    domain: str
    audio_path: Path | None = None
    #: in-memory audio (16 kHz mono float32), for datasets that carry arrays
    audio_array: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def answer_index(self) -> int:
        return min(self.correct)


@dataclass
class Dataset:
    examples: list[Example]
    source: str
    sha256: str | None
    audio_root: str | None

    def by_id(self) -> dict[str, Example]:
        return {e.id: e for e in self.examples}


def _example(
    raw: dict[str, Any],
    pos: int,
    audio_root: Path | None,
    source: str = "the data",
    keep_duplicates: bool = False,
) -> Example:
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise SteerAudioError(
            f"{source}: item #{pos} ({raw.get('id', '?')}) lacks field(s) {', '.join(missing)}"
        )
    choices = raw["choices"]
    if not isinstance(choices, list) or len(choices) < 2:
        raise SteerAudioError(f"{source}: item {raw['id']}: 'choices' must be a list of at least 2 strings")
    if len(choices) > MAX_CHOICES:
        raise SteerAudioError(
            f"{source}: item {raw['id']} has {len(choices)} choices; at most {MAX_CHOICES} are supported "
            f"(labels A-J): trim its choices or leave the item out"
        )
    ch = tuple(str(c).strip() for c in choices)
    dup = sorted({c for c in ch if ch.count(c) > 1})
    if dup and not keep_duplicates:
        raise SteerAudioError(
            f"{source}: item {raw['id']} repeats choice {dup[0]!r} in {list(ch)}: make its choices distinct"
        )
    ans = str(raw["answer"]).strip()
    correct = frozenset(i for i, c in enumerate(ch) if c == ans)
    if not correct:
        raise SteerAudioError(
            f"{source}: item {raw['id']}: answer {raw['answer']!r} is not among its choices {list(ch)}"
        )
    extra = {k: v for k, v in raw.items() if k not in ("id", "question", "choices", "answer", "audio_id")}
    for k, v in list(extra.items()):
        if isinstance(v, list) and len(v) == 1 and isinstance(v[0], str):
            extra[k] = v[0]  # 13 test-mini items store category as a one-element list
    audio_path = None
    if audio_root is not None and raw.get("audio_id"):
        audio_path = resolve_audio(audio_root, str(raw["audio_id"]))
    return Example(
        id=str(raw["id"]),
        question=str(raw["question"]).strip(),
        choices=ch,
        answer=ans,
        correct=correct,
        domain=str(extra.get("task", "all")),
        audio_path=audio_path,
        extra=extra,
    )


def resolve_audio(root: Path, audio_id: str) -> Path:
    """`./test-mini-audios/<id>.wav` under ROOT, or ROOT/<id>.wav; the first that exists (else the former)."""
    rel = Path(audio_id.removeprefix("./"))
    for cand in (root / rel, root / rel.name):
        if cand.exists():
            return cand
    return root / rel


def load_json(path: Path, audio_root: Path | None = None, keep_duplicate_choices: bool = True) -> Dataset:
    """An MMAU-format JSON list. With `keep_duplicate_choices=False` (the CLI, for every file but the bundled
    test-mini ones) an item that repeats a choice is refused; kept, every copy of the answer counts as right
    (MMAU's own test-mini files have 27 / 20 such items)."""
    path = Path(path)
    raw = read_json(path)
    if not isinstance(raw, list):
        raise SteerAudioError(f"{path}: expected a JSON list of MMAU items, got {type(raw).__name__}")
    if not raw:
        raise SteerAudioError(f"{path}: the file holds no items")
    root = Path(audio_root) if audio_root else path.parent
    if not all(isinstance(r, dict) for r in raw):
        raise SteerAudioError(f"{path}: every item must be a JSON object with id, question, choices, answer")
    examples = [_example(r, i, root, str(path), keep_duplicate_choices) for i, r in enumerate(raw)]
    seen: set[str] = set()
    for e in examples:
        if e.id in seen:
            raise SteerAudioError(f"{path}: duplicate item id {e.id}")
        seen.add(e.id)
    return Dataset(examples, str(path), sha256_file(path), str(root))


def load_hf(path: Path, split: str | None = None) -> Dataset:
    """A local `datasets` copy (save_to_disk folder or parquet files) with MMAU columns and an `audio` column."""
    import datasets

    p = Path(path)
    try:
        if p.is_dir() and (p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists():
            ds = datasets.load_from_disk(str(p))
        else:
            files = [str(f) for f in sorted(p.rglob("*.parquet"))] if p.is_dir() else [str(p)]
            ds = datasets.load_dataset("parquet", data_files=files, split="train")
    except (FileNotFoundError, ValueError) as e:
        raise SteerAudioError(f"cannot read a datasets copy of MMAU at {p}: {e}") from e
    if isinstance(ds, datasets.DatasetDict):
        split = split or next(iter(ds))
        ds = ds[split]
    if "audio" in ds.column_names:
        # decode ourselves (soundfile + librosa): datasets' own audio decoding needs torchcodec
        ds = ds.cast_column("audio", datasets.Audio(decode=False))
    examples = []
    for i, row in enumerate(ds):
        audio = row.pop("audio", None)
        ex = _example(dict(row), i, None, str(p))
        if audio is not None:
            ex.audio_array = _decode(audio, ex.id)
        examples.append(ex)
    parts = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    digest = sha256_json([[str(f.relative_to(p)) if p.is_dir() else f.name, sha256_file(f)] for f in parts])
    return Dataset(examples, str(p), digest, None)


def _decode(audio: dict[str, Any], ex_id: str) -> np.ndarray:
    import io

    import librosa
    import soundfile as sf

    try:
        src = io.BytesIO(audio["bytes"]) if audio.get("bytes") else audio["path"]
        wav, sr = sf.read(src, dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - any decoder failure is the same user-facing problem
        raise SteerAudioError(f"item {ex_id}: cannot decode its audio ({type(e).__name__}: {e})") from e
    mono = wav.mean(1)
    return mono if sr == 16000 else librosa.resample(mono, orig_sr=sr, target_sr=16000).astype(np.float32)


def load(path: Path, audio_root: Path | None = None, keep_duplicate_choices: bool = True) -> Dataset:
    p = Path(path)
    if not p.exists():
        raise SteerAudioError(f"--data {p}: data file not found")
    if p.suffix == ".json":
        return load_json(p, audio_root, keep_duplicate_choices)
    return load_hf(p)


# -- splits -----------------------------------------------------------------------------------------------


def carve(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A seeded calibration part, stratified by domain; returns (calib, rest)."""
    if not 0.0 < fraction < 1.0:
        raise SteerAudioError(f"--calib-fraction must be in (0, 1), got {fraction}")
    by_dom: dict[str, list[Example]] = defaultdict(list)
    for e in examples:
        by_dom[e.domain].append(e)
    rng = random.Random(seed)
    calib_ids: set[str] = set()
    for dom in sorted(by_dom):
        ids = sorted(e.id for e in by_dom[dom])
        rng.shuffle(ids)
        calib_ids.update(ids[: max(1, round(fraction * len(ids)))])
    calib = [e for e in examples if e.id in calib_ids]
    rest = [e for e in examples if e.id not in calib_ids]
    return calib, rest


def check_disjoint(calib: list[Example], evals: list[Example]) -> None:
    overlap = sorted({e.id for e in calib} & {e.id for e in evals})
    if overlap:
        shown = ", ".join(overlap[:5]) + (f" and {len(overlap) - 5} more" if len(overlap) > 5 else "")
        raise SteerAudioError(f"calibration and evaluation splits overlap in {len(overlap)} item(s): {shown}")
    if not calib:
        raise SteerAudioError("the calibration split is empty")
    if not evals:
        raise SteerAudioError("the evaluation split is empty")


def rotate(ex: Example, r: int) -> Example:
    """The same item with its options rotated by r (option i moves to position (i + r) mod n)."""
    n = len(ex.choices)
    order = [(i - r) % n for i in range(n)]  # new position j holds old option order[j]
    return Example(
        id=f"{ex.id}#rot{r}",
        question=ex.question,
        choices=tuple(ex.choices[k] for k in order),
        answer=ex.answer,
        correct=frozenset(j for j, k in enumerate(order) if k in ex.correct),
        domain=ex.domain,
        audio_path=ex.audio_path,
        audio_array=ex.audio_array,
        extra={**ex.extra, "rotation_of": ex.id, "rotation": r},
    )


def by_split_field(examples: list[Example], calib: str, evals: str) -> tuple[list[Example], list[Example]]:
    c = [e for e in examples if e.extra.get("split") == calib]
    v = [e for e in examples if e.extra.get("split") == evals]
    return c, v
