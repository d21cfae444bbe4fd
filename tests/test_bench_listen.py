"""listen-bench: byte-determinism of the generator, twin structure, balance and split disjointness."""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from steer_audio.bench import listen_bench as lb
from steer_audio.bench.items import base_items, twin_rows

TOOLS = ("sox", "espeak-ng", "fluidsynth")
needs_tools = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS) or not lb.ALLISON_DIR.is_dir(),
    reason="listen-bench needs sox, espeak-ng, fluidsynth and asterisk-core-sounds-en-wav (scripts/setup_mini.sh)",
)
SMALL = lb.BenchConfig(n_train=2, n_calib=1, n_test=1)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small_bench(tmp_path_factory) -> Path:
    if any(shutil.which(t) is None for t in TOOLS) or not lb.ALLISON_DIR.is_dir():
        pytest.skip("listen-bench tools missing (scripts/setup_mini.sh)")
    out = tmp_path_factory.mktemp("lb1")
    lb.generate(out, SMALL)
    return out


@needs_tools
def test_generator_is_byte_deterministic(small_bench: Path, tmp_path: Path) -> None:
    lb.generate(tmp_path, SMALL)
    a, b = _digest(small_bench), _digest(tmp_path)
    assert a == b
    assert len([k for k in a if k.endswith(".wav")]) == 2 * 4 * len(lb.TEMPLATES)


@needs_tools
def test_manifest_records_every_file(small_bench: Path) -> None:
    import json

    man = json.loads((small_bench / lb.MANIFEST_JSON).read_text())
    files = _digest(small_bench)
    assert man["json_sha256"] == files[lb.DATA_JSON]
    for rel, sha in man["files"].items():
        assert files[rel] == sha
    assert (small_bench / lb.LICENSES_MD).is_file()


@needs_tools
def test_twins_and_silence(small_bench: Path) -> None:
    rows = lb.load_items(small_bench)
    by = {}
    for r in rows:
        by.setdefault(r["twin_of"], {})[r["condition"]] = r
    for twins in by.values():
        assert set(twins) == set(lb.CONDITIONS)
        n = twins["neutral"]
        assert n["prior_choice"] is None
        assert twins["consistent"]["prior_choice"] == n["answer"]
        assert twins["misleading"]["prior_choice"] != n["answer"]
        assert twins["misleading"]["prior_choice"] in n["choices"]
        assert twins["silence"]["question"] == twins["misleading"]["question"]
        assert len({t["audio_id"] for c, t in twins.items() if c != "silence"}) == 1
        y, sr = sf.read(str(small_bench / n["audio_id"]))
        z, sr0 = sf.read(str(small_bench / twins["silence"]["audio_id"]))
        assert sr == sr0 == 16000 and len(y) == len(z) and not np.any(z) and np.any(y)
        assert len(y) <= lb.MAX_S * sr
    keys = {
        "id",
        "audio_id",
        "question",
        "choices",
        "answer",
        "dataset",
        "task",
        "split",
        "category",
        "sub-category",
        "difficulty",
        "prior_choice",
        "condition",
        "twin_of",
    }
    assert all(keys <= set(r) for r in rows)
    assert {r["task"] for r in rows} == {"sound", "music", "speech"}


def test_balance_and_disjoint_splits() -> None:
    plan = base_items(lb.BenchConfig())
    for split in lb.SPLITS:
        for t in lb.TEMPLATES:
            items = [b for b in plan if b["split"] == split and b["template"] == t]
            ans = Counter(b["choices"].index(b["answer"]) for b in items)
            pri = Counter(b["choices"].index(b["prior"]) for b in items)
            assert max(ans.values()) - min(ans.values()) <= 1, (split, t, ans)
            assert max(pri.values()) - min(pri.values()) <= 2, (split, t, pri)
    hints = {s: {b["hint_variant"] for b in plan if b["split"] == s} for s in lb.SPLITS}
    assert not (hints["train"] & hints["calib"]) and not (hints["train"] & hints["test"])
    assert not (hints["calib"] & hints["test"])
    seeds = {s: {b["audio_seed"] for b in plan if b["split"] == s} for s in lb.SPLITS}
    assert not (seeds["train"] & seeds["test"]) and not (seeds["calib"] & seeds["test"])


def test_first_tokens_distinct_or_loud_failure() -> None:
    class Tok:  # a tokenizer whose first token is the first letter: "beep" and "buzz" clash
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(text[0])]}

    rows = [{"id": "x", "choices": ["beep", "buzz", "hiss", "siren"]}]
    with pytest.raises(lb.BenchError, match="same first token"):
        lb.check_choice_tokens(rows, Tok())


@pytest.mark.mini
def test_first_tokens_distinct_under_gemma() -> None:
    from steer_audio.models.mini import assemble

    if not assemble.is_set_up():
        pytest.skip("mini cache absent; run scripts/setup_mini.sh")
    tok = assemble.load_tokenizer()
    plan = base_items(lb.BenchConfig())
    rows = [r for b in plan for r in twin_rows(b)]
    lb.check_choice_tokens(rows, tok)
