"""listen-heldout (steer_audio/bench/heldout.py): real speech of kinds no listen-bench split contains, in
listen-bench's row format, hints phrased unlike every listen-bench split, byte-identical reruns."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf

from steer_audio.bench import heldout as ho
from steer_audio.bench import listen_bench as lb


def _available() -> bool:
    try:
        ho.allison_dir()
    except lb.BenchError:
        return False
    return shutil.which("sox") is not None and ho.LIBRIVOX_DIR.is_dir()


@pytest.fixture(scope="module")
def heldout(tmp_path_factory) -> Path:
    if not _available():
        pytest.skip("listen-heldout needs sox, asterisk-core-sounds-en-wav and pocketsphinx-testdata")
    out = tmp_path_factory.mktemp("ho")
    ho.generate(out)
    return out


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_rows_are_well_formed_and_held_out(heldout) -> None:
    rows = lb.load_items(heldout)
    assert {r["split"] for r in rows} == {ho.SPLIT}
    assert not {r["template"] for r in rows} & set(lb.TEMPLATES)  # none of listen-bench's templates
    twins: dict[str, dict[str, dict]] = {}
    for r in rows:
        twins.setdefault(r["twin_of"], {})[r["condition"]] = r
        assert r["answer"] in r["choices"] and len(set(r["choices"])) == 4
    assert len(twins) >= 60
    for tw in twins.values():
        assert set(tw) == set(lb.CONDITIONS)
        assert tw["neutral"]["prior_choice"] is None
        assert tw["misleading"]["prior_choice"] != tw["misleading"]["answer"]
        assert tw["consistent"]["prior_choice"] == tw["consistent"]["answer"]
        for cond in ("misleading", "consistent", "silence"):
            q = tw[cond]["question"]
            assert not any(q.startswith(h.split("{h}")[0]) for h in lb.HINTS)  # phrased unlike every split
            assert any(q.startswith(h.split("{h}")[0]) for h in ho.HINTS)
        y, sr = sf.read(str(heldout / tw["silence"]["audio_id"]))
        y2, _ = sf.read(str(heldout / tw["neutral"]["audio_id"]))
        assert sr == 16000 and len(y) == len(y2) and not y.any() and y2.any()
    # the sources: Allison's phrase/word files (never her digits/ or letters/ folders) and LibriVox
    assert all("/" not in r["source"] for r in rows)
    assert {r["template"] for r in rows} == {"phrase-real", "word-real", "word-librivox"}


def test_manifest_and_byte_identical_rerun(heldout, tmp_path) -> None:
    man = json.loads((heldout / lb.MANIFEST_JSON).read_text())
    files = _digest(heldout)
    assert man["json_sha256"] == files[lb.DATA_JSON]
    for rel, digest in man["files"].items():
        assert files[rel] == digest
    ho.generate(tmp_path)
    assert _digest(tmp_path) == files
