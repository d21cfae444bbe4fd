"""listen-heldout: a held-out listening set of a kind no listen-bench split contains.

Real recorded speech outside listen-bench's ten templates, asked in listen-bench's row format (split
``heldout``, the same four conditions), with hint sentences phrased unlike every listen-bench split:

* ``phrase-real`` / ``word-real``: Allison Smith's Asterisk prompt recordings (CC-BY-SA-3.0), her
  *phrase* files (e.g. "all circuits are busy now") and single *words* ("goodbye", "transfer", ...);
  listen-bench uses only her digits and letters. Question: which phrase / word is spoken; the three wrong
  options are other phrases / words of the set.
* ``word-librivox``: the five LibriVox *Sense and Sensibility* sentences of pocketsphinx-testdata (BSD-2;
  a male reader, no TTS): which of four words the reader says; the wrong options are words of the other
  sentences that this one does not contain.

Clips are resampled to 16 kHz with sox and cut/padded to the 10 s window, no noise added; the silence twin
is all zeros of the same length. Byte-identical reruns for the same tools (sha256 of every wav in the
manifest). Generate with ``steer-audio bench --heldout`` (default folder ``$STEER_AUDIO_CACHE/heldout``);
score with ``eval-mini --data <folder> --split heldout``.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import SteerAudioError
from ..io import read_json, sha256_file, write_text
from . import listen_bench as lb
from . import sounds as snd
from .items import first_tokens_distinct, twins

GENERATOR_VERSION = "listen-heldout-1"
SPLIT = "heldout"
#: phrased unlike every listen-bench hint (lb.HINTS), and unlike each other
HINTS = (
    "The caption that was uploaded with this clip reads: {h}.",
    "Somebody who transcribed this recording wrote down: {h}.",
)
LIBRIVOX_DIR = Path("/usr/share/pocketsphinx/test/data/librivox")
ALLISON_CANDIDATES = (
    Path("/usr/share/asterisk/sounds/en"),
    Path("/usr/share/asterisk/sounds/en_US_f_Allison"),
)
MAX_S = 10.0
#: function words never used as LibriVox options (too short to be told apart by ear)
STOP = frozenset(
    "a an and to of be he was is had have in his for how much then there might them than more".split()
)
LICENSES_TEXT = """# listen-heldout: licences of the audio

* phrase-real: Allison Smith's Asterisk prompts (Debian asterisk-core-sounds-en-wav), CC-BY-SA-3.0;
  resampled to 16 kHz (sox). Share-alike: these derived wavs are CC-BY-SA-3.0 too.
* word-librivox: LibriVox "Sense and Sensibility" clips shipped by Debian pocketsphinx-testdata (BSD-2;
  LibriVox recordings are public domain); resampled to 16 kHz (sox).
* Silence twins: all-zero samples (no source).
Generator: {version}.
"""


def default_dir() -> Path:
    return lb.default_bench_dir().with_name("heldout")


def allison_dir() -> Path:
    """The Allison recordings folder (listen-bench's, else the Debian package's other layout)."""
    for d in (lb.ALLISON_DIR, *ALLISON_CANDIDATES):
        if Path(d).is_dir():
            return Path(d)
    raise lb.BenchError("Allison recordings missing (apt-get install asterisk-core-sounds-en-wav)")


#: Allison's phrase files whose name is (close to) what she says, with the option text for each
PHRASES = {
    "all-circuits-busy-now": "all circuits are busy now",
    "at-tone-time-exactly": "at the tone the time will be",
    "cannot-complete-as-dialed": "your call cannot be completed as dialed",
    "check-number-dial-again": "please check the number and dial again",
    "do-not-disturb": "do not disturb",
    "from-unknown-caller": "from an unknown caller",
    "if-correct-press": "if this is correct, press",
    "info-about-last-call": "information about the last call",
    "is-in-use": "is in use",
    "number-not-answering": "the number is not answering",
    "one-moment-please": "one moment please",
    "please-try-again": "please try again",
    "please-try-call-later": "please try your call again later",
    "something-terribly-wrong": "something is terribly wrong",
    "sorry-youre-having-problems": "sorry you are having problems",
    "to-call-this-number": "to call this number",
    "to-listen-to-it": "to listen to it",
    "to-rerecord-it": "to re-record it",
    "speed-dial-empty": "the speed dial is empty",
    "simul-call-limit-reached": "the simultaneous call limit has been reached",
    "conf-now-muted": "you are now muted",
    "conf-now-unmuted": "you are now unmuted",
    "vm-invalid-password": "invalid password",
    "vm-incorrect-mailbox": "incorrect mailbox",
}
#: Allison's single-word files (the file name is the word), none of them a digit or a letter name
WORDS = (
    "activated added calling cancelled disabled enabled extension goodbye hello hours invalid location "
    "lowercase minute number removed second sorry time transfer uppercase"
).split()


def _allison_items(root: Path, kind: str) -> list[tuple[str, Path]]:
    """(option text, file) for Allison's phrase or single-word recordings present under ``root``."""
    pairs = PHRASES.items() if kind == "phrase-real" else ((w, w) for w in WORDS)
    return [(text, root / f"{stem}.wav") for stem, text in pairs if (root / f"{stem}.wav").is_file()]


def _librivox() -> list[tuple[list[str], Path]]:
    text = (LIBRIVOX_DIR / "transcription").read_text()
    out = []
    for m in re.finditer(r"<s>(.*?)</s>\s*\((.*?)\)", text):
        out.append((m.group(1).split(), LIBRIVOX_DIR / f"{m.group(2)}.wav"))
    if not out:
        raise lb.BenchError(f"no LibriVox clips in {LIBRIVOX_DIR} (apt-get install pocketsphinx-testdata)")
    return out


def _plan(tokenizer: object | None, seed: int) -> list[dict]:
    """Base items (answer, choices, prior, source file, hint variant), deterministic in ``seed``."""
    rng = np.random.default_rng([seed, 14])
    items: list[dict] = []
    for kind in ("phrase-real", "word-real"):
        pool = _allison_items(allison_dir(), kind)
        texts = [t for t, _ in pool]
        for ans, path in pool:
            others = [t for t in texts if t != ans]
            for _ in range(50):
                choices = [ans, *(others[int(i)] for i in rng.choice(len(others), 3, replace=False))]
                if first_tokens_distinct(tokenizer, choices):
                    break
            else:
                continue
            items.append({"template": kind, "answer": ans, "choices": choices, "file": path})
    lv = _librivox()
    for i, (words, path) in enumerate(lv):
        mine = [w for w in dict.fromkeys(words) if w not in STOP and len(w) > 2]
        others = sorted({w for j, (ws, _) in enumerate(lv) if j != i for w in ws} - set(words) - STOP)
        others = [w for w in others if len(w) > 2]
        for ans in [mine[int(j)] for j in rng.permutation(len(mine))[:4]]:
            for _ in range(50):
                choices = [ans, *(others[int(j)] for j in rng.choice(len(others), 3, replace=False))]
                if first_tokens_distinct(tokenizer, choices):
                    break
            else:
                continue
            items.append({"template": "word-librivox", "answer": ans, "choices": choices, "file": path})
    for n, it in enumerate(items):
        perm = rng.permutation(4)
        it["choices"] = [it["choices"][int(j)] for j in perm]
        it["prior"] = [c for c in it["choices"] if c != it["answer"]][int(rng.integers(0, 3))]
        it["hint_variant"] = int(rng.integers(0, len(HINTS)))
        it["base"] = f"{SPLIT}-{it['template']}-{n:03d}"
    return items


QUESTIONS = {
    "phrase-real": ("speech", "Which phrase is spoken in the recording?"),
    "word-real": ("speech", "Which word does the woman say?"),
    "word-librivox": ("speech", "Which of these words does the reader say in the recording?"),
}


def _rows(it: dict) -> list[dict]:
    task, question = QUESTIONS[it["template"]]
    return twins(
        it,
        HINTS[it["hint_variant"]],
        question,
        dataset="listen-heldout",
        task=task,
        split=SPLIT,
        category="real speech",
        sub_category=it["template"],
        difficulty="real",
        source=str(it["file"].name),
        snr_db=None,
    )


def generate(
    out_dir: Path,
    tokenizer: object | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write listen-heldout into ``out_dir`` (listen-bench's layout) and return its manifest."""
    out_dir = Path(out_dir)
    plan = _plan(tokenizer, seed)
    (out_dir / lb.AUDIO_DIR).mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="listen-heldout-") as tmp:
        for k, it in enumerate(plan):
            y = snd.sox_to_16k(it["file"], Path(tmp) / "a16.wav")[: int(MAX_S * lb.SR)]
            for name, sig in ((it["base"], y), (it["base"] + "-silence", np.zeros_like(y))):
                wav = out_dir / lb.AUDIO_DIR / f"{name}.wav"
                snd.write_wav(wav, sig)
                files[f"{lb.AUDIO_DIR}/{wav.name}"] = sha256_file(wav)
            if progress is not None:
                progress(k + 1, len(plan))
    rows = [r for it in plan for r in _rows(it)]
    write_text(out_dir / lb.DATA_JSON, json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    write_text(out_dir / lb.LICENSES_MD, LICENSES_TEXT.format(version=GENERATOR_VERSION))
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        counts.setdefault(r["template"], {}).setdefault(r["condition"], 0)
        counts[r["template"]][r["condition"]] += 1
    manifest = {
        "generator": GENERATOR_VERSION,
        "config": {"seed": seed, "first_token_checked": tokenizer is not None},
        "counts": counts,
        "json_sha256": sha256_file(out_dir / lb.DATA_JSON),
        "files": dict(sorted(files.items())),
    }
    write_text(out_dir / lb.MANIFEST_JSON, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def steering_check(bench_json: Path, heldout_json: Path, out_json: Path) -> dict:
    """One file for the held-out steering check: listen-bench's calibration rows (split ``calib``) and every
    listen-heldout row as the evaluation split (``split`` set to ``test``, ``dataset`` kept), audio paths made
    absolute. `steer-audio evaluate --data OUT` then chooses alpha / layer / threshold on listen-bench's
    calibration split exactly as the at-scale run does and scores the held-out rows once at that choice."""
    rows = []
    for path, keep in ((Path(bench_json), "calib"), (Path(heldout_json), SPLIT)):
        root = path.resolve().parent
        for r in read_json(path):
            if r.get("split") != keep:
                continue
            r = dict(r, audio_id=str(root / str(r["audio_id"]).removeprefix("./")))
            if keep == SPLIT:
                r["split"] = "test"
            rows.append(r)
    if not any(r["split"] == "test" for r in rows) or not any(r["split"] == "calib" for r in rows):
        raise SteerAudioError(f"{bench_json} needs 'calib' rows and {heldout_json} '{SPLIT}' rows")
    write_text(Path(out_json), json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    return {
        "calib": sum(r["split"] == "calib" for r in rows),
        "test": sum(r["split"] == "test" for r in rows),
    }


if __name__ == "__main__":  # python -m steer_audio.bench.heldout BENCH_JSON HELDOUT_JSON OUT_JSON
    import sys

    sys.stdout.write(f"{steering_check(*(Path(a) for a in sys.argv[1:4]))}\n")
