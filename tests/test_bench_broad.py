"""listen-broad (steer_audio/bench/broad.py): extra training rows in listen-bench's row format that use
nothing of listen-heldout (no Allison or LibriVox file read, none of their words spoken or offered),
byte-identical reruns, distinct first tokens under a tokenizer."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from steer_audio.bench import broad as br
from steer_audio.bench import heldout as ho
from steer_audio.bench import listen_bench as lb
from steer_audio.bench.items import base_items, twin_rows

CFG = br.BroadConfig(n_per_template=2)


def _tools_present() -> bool:
    tools = ("sox", "espeak-ng", "flite", "fluidsynth")
    return all(shutil.which(t) for t in tools) and br.WORDS_FILE.is_file()


def _generate(out: Path) -> tuple[dict, list[list[str]]]:
    """Generate with every external command recorded (they all go through listen-bench's tool runner,
    ``bench.sounds.run_tool``)."""
    calls: list[list[str]] = []
    mp = pytest.MonkeyPatch()
    targets = [(importlib.import_module("steer_audio.bench.sounds"), "run_tool")]
    for mod, name in targets:
        real = getattr(mod, name)
        mp.setattr(mod, name, lambda cmd, real=real: (calls.append(list(cmd)), real(cmd))[1])
    try:
        man = br.generate(out, CFG)
    finally:
        mp.undo()
    return man, calls


@pytest.fixture(scope="module")
def broad(tmp_path_factory) -> tuple[Path, dict, list[list[str]]]:
    if not _tools_present():
        pytest.skip(
            "listen-broad needs sox, espeak-ng, flite, fluidsynth and wamerican (scripts/setup_mini.sh)"
        )
    out = tmp_path_factory.mktemp("broad")
    man, calls = _generate(out)
    return out, man, calls


def _heldout_words() -> set[str]:
    """Independently of broad.py: every word listen-heldout speaks or offers."""
    words = set(ho.WORDS)
    for stem, text in ho.PHRASES.items():
        words |= set(re.findall(r"[a-z]+", text.lower())) | set(stem.split("-"))
    tr = ho.LIBRIVOX_DIR / "transcription"
    if tr.is_file():
        for m in re.finditer(r"<s>(.*?)</s>", tr.read_text()):
            words |= set(m.group(1).split())
    return words


def _clashes(word: str, held: set[str]) -> bool:
    if word in held:
        return True
    return len(word) >= 4 and any(len(h) >= 4 and (word.startswith(h) or h.startswith(word)) for h in held)


def test_librivox_word_list_covers_the_transcripts() -> None:
    tr = ho.LIBRIVOX_DIR / "transcription"
    if not tr.is_file():
        pytest.skip("pocketsphinx-testdata not installed")
    words = {w for m in re.finditer(r"<s>(.*?)</s>", tr.read_text()) for w in m.group(1).split()}
    assert words == br.LIBRIVOX_WORDS


def test_is_held_out_by_hand() -> None:
    vocab = br.heldout_vocabulary()
    for w in ("goodbye", "goodbyes", "transfers", "the", "then", "dashwood", "muted", "circuit", "timer"):
        assert br.is_held_out(w, vocab), w
    for w in ("lantern", "cat", "garden", "tim", "pebble"):
        assert not br.is_held_out(w, vocab), w


def test_word_pool_has_no_heldout_word() -> None:
    if not br.WORDS_FILE.is_file():
        pytest.skip("wamerican not installed")
    held = _heldout_words()
    pool = br.word_pool()
    assert len(pool) > 10_000 and pool == sorted(pool)
    assert not [w for w in pool if _clashes(w, held)]
    assert {"lantern", "garden", "pebble"} <= set(pool)


def test_no_heldout_source_file_or_word_is_used(broad) -> None:
    out, man, calls = broad
    # no external command names a held-out source (Allison's recordings, LibriVox clips)
    forbidden = ("asterisk", "allison", "pocketsphinx", "librivox", str(lb.ALLISON_DIR))
    assert calls and not [c for c in calls if any(f in " ".join(c).lower() for f in forbidden)]
    for p in (*ho.ALLISON_CANDIDATES, lb.ALLISON_DIR, ho.LIBRIVOX_DIR):
        assert not [s for s in man["sources"].values() if str(p) in s["path"]]
    # no held-out word is spoken or offered as an option
    held = _heldout_words()
    spoken = [w for s in man["spoken"].values() if s["text"] for w in re.findall(r"[a-z]+", s["text"])]
    assert spoken
    offered = [
        w for r in lb.load_items(out) if r["task"] == "speech" for c in r["choices"] for w in c.split()
    ]
    assert not [w for w in spoken + offered if _clashes(w, held)]
    # and the spoken text is what the item asks about
    for r in lb.load_items(out, condition="neutral"):
        text = man["spoken"][r["twin_of"].removesuffix("-neutral")]["text"]
        if r["template"] == "broad-word":
            assert text == r["answer"]
        elif r["template"] == "broad-word-in-list":
            assert r["answer"] in text.split(", ")
            assert not [c for c in r["choices"] if c != r["answer"] and c in text.split(", ")]


def test_rows_are_listen_bench_training_rows(broad) -> None:
    out, man, _ = broad
    lb_row = twin_rows(base_items(lb.BenchConfig(n_train=1, n_calib=0, n_test=0))[0])[0]
    rows = lb.load_items(out)
    assert len(rows) == 4 * 2 * len(br.TEMPLATES)
    heldout_questions = {q for _, q in ho.QUESTIONS.values()}
    twins: dict[str, dict[str, dict]] = {}
    for r in rows:
        assert set(r) == set(lb_row)
        assert r["split"] == "train" and r["dataset"] == "listen-broad"
        assert r["answer"] in r["choices"] and len(set(r["choices"])) == 4
        twins.setdefault(r["twin_of"], {})[r["condition"]] = r
    for tw in twins.values():
        assert set(tw) == set(lb.CONDITIONS)
        neutral = tw["neutral"]
        assert neutral["prior_choice"] is None and neutral["question"] not in heldout_questions
        assert tw["misleading"]["prior_choice"] != neutral["answer"]
        assert tw["consistent"]["prior_choice"] == neutral["answer"]
        assert tw["silence"]["question"] == tw["misleading"]["question"]
        for cond in ("misleading", "consistent"):
            assert tw[cond]["hint_variant"] in lb.HINT_VARIANTS["train"]  # listen-bench's training hints
            h = lb.HINTS[tw[cond]["hint_variant"]]
            assert tw[cond]["question"] == h.format(h=tw[cond]["prior_choice"]) + " " + neutral["question"]
        y, sr = sf.read(str(out / neutral["audio_id"]), dtype="int16")
        z, sr2 = sf.read(str(out / tw["silence"]["audio_id"]), dtype="int16")
        assert sr == sr2 == 16_000 and y.ndim == 1 and len(y) == len(z) <= 10 * sr
        assert np.abs(y).max() > 1000 and not z.any()
    for rel, digest in man["files"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    assert man["json_sha256"] == hashlib.sha256((out / lb.DATA_JSON).read_bytes()).hexdigest()
    assert (out / lb.LICENSES_MD).read_text().count("|") > 10


def test_rerun_is_byte_identical(broad, tmp_path) -> None:
    out, _, _ = broad
    _generate(tmp_path)

    def digest(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    assert digest(tmp_path) == digest(out)


class ShortWordTokenizer:
    """A hand-made tokenizer: a word of up to four letters is one token, a longer word two."""

    def __call__(self, text, add_special_tokens=False):  # type: ignore[no-untyped-def]
        def enc(t: str) -> list[int]:
            return [ord(t[0]), len(t)] if len(t) > 4 else [len(t) * 1000 + ord(t[0])]

        return {"input_ids": [enc(t) for t in text] if isinstance(text, list) else enc(text)}


class FirstTwoLetters:
    """One token per word: its first two letters (so 'garden' and 'gate' share a first token)."""

    def __call__(self, text, add_special_tokens=False):  # type: ignore[no-untyped-def]
        def enc(t: str) -> list[int]:
            return [ord(w[0]) * 256 + ord(w[1]) for w in t.split()]

        return {"input_ids": [enc(t) for t in text] if isinstance(text, list) else enc(text)}


def test_tokenizer_keeps_single_token_words_only() -> None:
    if not br.WORDS_FILE.is_file():
        pytest.skip("wamerican not installed")
    assert br.word_pool(ShortWordTokenizer()) == [w for w in br.word_pool() if len(w) <= 4]


def test_plan_options_have_distinct_first_tokens() -> None:
    if not br.WORDS_FILE.is_file():
        pytest.skip("wamerican not installed")

    tok = FirstTwoLetters()
    items = br.plan(br.BroadConfig(n_per_template=6), tok)
    assert len(items) == 6 * len(br.TEMPLATES)
    for it in items:
        firsts = [c.split()[0][:2] for c in it["choices"]]
        assert len(set(firsts)) == 4, it["choices"]
    assert items == br.plan(br.BroadConfig(n_per_template=6), tok)  # deterministic
    assert items != br.plan(br.BroadConfig(n_per_template=6, seed=1), tok)
    json.dumps(items)  # plain data


def test_cli_writes_the_broad_set_and_refuses_two_sets(tmp_path) -> None:
    from typer.testing import CliRunner

    from steer_audio.cli import app

    if not _tools_present():
        pytest.skip(
            "listen-broad needs sox, espeak-ng, flite, fluidsynth and wamerican (scripts/setup_mini.sh)"
        )
    runner = CliRunner()
    res = runner.invoke(
        app, ["bench", "--broad", "--heldout", "--out", str(tmp_path / "x"), "--no-check-tokens"]
    )
    assert res.exit_code != 0 and not (tmp_path / "x").exists()
    res = runner.invoke(
        app, ["bench", "--broad", "--n-broad", "1", "--out", str(tmp_path / "b"), "--no-check-tokens"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["json_sha256"] == hashlib.sha256((tmp_path / "b" / lb.DATA_JSON).read_bytes()).hexdigest()
    assert {t: c["neutral"] for t, c in out["counts"].items()} == dict.fromkeys(br.TEMPLATES, 1)
