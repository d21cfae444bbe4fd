"""listen-broad: extra TRAINING rows of broader audio than listen-bench's ten templates.

An embedded model trained on listen-bench alone hears what its ten templates say (digits, letters, six
instruments, ...). These rows add many more words, speakers and sounds, in listen-bench's row format
(split ``train``, the four twins neutral / misleading / consistent / silence, listen-bench's *training*
hint sentences), for ``train-mini --extra-train DIR``:

* ``broad-word``: one word of the Debian ``wamerican`` word list, spoken by espeak-ng (8 English
  accents x 54 voice variants) or flite (5 CMU voices), at random speed and pitch, sometimes through a
  telephone band or a room reverb; the three wrong options are other words of the list;
* ``broad-phrase``: a 2-4 word sequence of such words; the wrong options are other sequences;
* ``broad-word-in-list``: 5-8 spoken words; which of four words occurs in it;
* ``broad-instrument``: a melody on one of 27 General MIDI instruments (fluidsynth, TimGM6mb);
* ``broad-sound``: eight synthesized everyday sounds (bell, knock, rain, wind, engine, chirp, heartbeat,
  drip; numpy).

Nothing of listen-heldout is used: no Allison recording and no LibriVox clip is read, and no word of its
word lists, phrases or LibriVox transcripts (nor a word that extends or is extended by one of them, at
four letters or more) is spoken or offered as an option (``heldout_vocabulary``, ``is_held_out``).

With a tokenizer the word list is reduced to words that are one token of it (a proxy for common words)
and every item's options have distinct first tokens (first-token scoring). Byte-identical reruns for the
same tools, word list and tokenizer (sha256 of every file in the manifest). Generate with
``steer-audio bench --broad [--out DIR]`` (default folder ``$STEER_AUDIO_CACHE/broad``).
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..io import sha256_file, write_text
from . import heldout as ho
from . import listen_bench as lb
from . import sounds as snd
from .items import derive_seed, difficulty, first_tokens_distinct, twins

GENERATOR_VERSION = "listen-broad-1"
DATASET = "listen-broad"
SPLIT = "train"
WORDS_FILE = Path("/usr/share/dict/words")  # Debian wamerican (SCOWL)
SR = lb.SR

#: every word of the five LibriVox transcripts that listen-heldout asks about
#: (``heldout.LIBRIVOX_DIR/transcription``; a test checks this list against the file)
LIBRIVOX_WORDS = frozenset(
    """and mister john dashwood had then leisure to consider how much there might be prudently in his power
    do for them he was not an ill disposed young man unless rather cold hearted selfish is married a more
    amiable woman have been made still respectable than even himself""".split()
)

ESPEAK_ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-rp",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
#: espeak-ng voice variants that sound like a person (robots, "Demonic" and the like left out)
ESPEAK_VARIANTS = tuple(
    """m1 m2 m3 m4 m5 m6 m7 m8 f1 f2 f3 f4 f5 klatt klatt2 klatt3 adam Alex Alicia Andrea Andy Annie aunty
    belinda benjamin caleb david ed edward Gene gustave Hugo iven john Lee linda max Michael Mike norbert
    paul quincy rob robert steph travis victor zac anika grandpa grandma shelby whisper whisperf""".split()
)
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")

#: General MIDI programs with a one-word name (0-based program numbers)
GM_INSTRUMENTS = {
    "piano": 0,
    "harpsichord": 6,
    "celesta": 8,
    "glockenspiel": 9,
    "vibraphone": 11,
    "marimba": 12,
    "xylophone": 13,
    "organ": 19,
    "accordion": 21,
    "harmonica": 22,
    "guitar": 24,
    "bass": 32,
    "violin": 40,
    "viola": 41,
    "cello": 42,
    "harp": 46,
    "timpani": 47,
    "trumpet": 56,
    "trombone": 57,
    "tuba": 58,
    "saxophone": 65,
    "oboe": 68,
    "bassoon": 70,
    "clarinet": 71,
    "flute": 73,
    "sitar": 104,
    "banjo": 105,
}
SOUNDS = ("bell", "knock", "rain", "wind", "engine", "chirp", "heartbeat", "drip")


class BroadError(lb.BenchError):
    """The broad training rows cannot be generated (missing tool or word list)."""


@dataclass(frozen=True)
class BroadTemplate:
    name: str
    task: str
    source: str
    category: str
    sub_category: str
    questions: tuple[str, ...]
    size: int  # default number of base items
    snr_db: tuple[float, float]


TEMPLATES: dict[str, BroadTemplate] = {
    t.name: t
    for t in (
        BroadTemplate(
            "broad-word",
            "speech",
            "espeak-ng/flite",
            "Speech",
            "Spoken word (many voices)",
            (
                "What word does the speaker say?",
                "Which word can be heard in this clip?",
                "Which of the choices is the word spoken here?",
            ),
            600,
            (3.0, 35.0),
        ),
        BroadTemplate(
            "broad-phrase",
            "speech",
            "espeak-ng/flite",
            "Speech",
            "Spoken word sequence (many voices)",
            (
                "What does the voice in this clip say?",
                "Which of these word sequences is spoken?",
                "Which words does the speaker say, in order?",
            ),
            300,
            (3.0, 35.0),
        ),
        BroadTemplate(
            "broad-word-in-list",
            "speech",
            "espeak-ng/flite",
            "Speech",
            "Word in a spoken list (many voices)",
            (
                "One of these words occurs in the spoken list. Which one?",
                "The speaker reads out several words. Which of the choices is one of them?",
                "Which of these words is in the list that is read out?",
            ),
            300,
            (3.0, 35.0),
        ),
        BroadTemplate(
            "broad-instrument",
            "music",
            "fluidsynth",
            "Music",
            "Instrument identification (27 instruments)",
            (
                "Which instrument plays in this clip?",
                "What instrument can be heard here?",
                "The melody is played on which instrument?",
            ),
            150,
            (0.0, 25.0),
        ),
        BroadTemplate(
            "broad-sound",
            "sound",
            "numpy",
            "Sound",
            "Everyday sound (synthesized)",
            (
                "What is making the sound in this recording?",
                "Which sound is heard in the clip?",
                "What does this recording sound like?",
            ),
            150,
            (0.0, 25.0),
        ),
    )
}


@dataclass(frozen=True)
class BroadConfig:
    seed: int = 0
    #: base items per template (``None``: each template's own size)
    n_per_template: int | None = None
    templates: tuple[str, ...] = field(default_factory=lambda: tuple(TEMPLATES))

    def size(self, name: str) -> int:
        return TEMPLATES[name].size if self.n_per_template is None else self.n_per_template


def default_dir() -> Path:
    return lb.default_bench_dir().with_name("broad")


# ----------------------------------------------------------------------------------------------
# what is held out


def heldout_vocabulary() -> frozenset[str]:
    """Every word listen-heldout speaks or offers: Allison's words, her phrases' words (and their file
    names' words), the LibriVox transcripts' words."""
    words = set(ho.WORDS) | LIBRIVOX_WORDS
    for stem, text in ho.PHRASES.items():
        words |= set(re.findall(r"[a-z]+", text.lower())) | set(re.findall(r"[a-z]+", stem))
    return frozenset(words)


def is_held_out(word: str, vocab: frozenset[str]) -> bool:
    """A word of ``vocab``, or (both at least four letters) one that starts with, or begins, such a word."""
    w = word.lower()
    if w in vocab:
        return True
    return len(w) >= 4 and any(len(h) >= 4 and (w.startswith(h) or h.startswith(w)) for h in vocab)


def word_pool(tokenizer: object | None = None, words_file: Path = WORDS_FILE) -> list[str]:
    """Lower-case a-z words of 3-8 letters from the word list, minus the held-out ones; with a tokenizer,
    only words that are a single token of it (sorted, so the pool is the same on every machine)."""
    if not words_file.is_file():
        raise BroadError(f"{words_file} missing (apt-get install wamerican)")
    vocab = heldout_vocabulary()
    raw = words_file.read_text(encoding="utf-8", errors="replace").split()
    pool = sorted({w for w in raw if re.fullmatch(r"[a-z]{3,8}", w) and not is_held_out(w, vocab)})
    if tokenizer is not None:
        ids = tokenizer(pool, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        pool = [w for w, t in zip(pool, ids, strict=True) if len(t) == 1]
    return pool


# ----------------------------------------------------------------------------------------------
# the plan (no audio)


def _pick(rng: np.random.Generator, pool: Sequence[str], k: int, avoid: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < k:
        w = pool[int(rng.integers(0, len(pool)))]
        if w not in avoid and w not in out:
            out.append(w)
    return out


def _options(
    rng: np.random.Generator,
    tokenizer: object | None,
    answer: str,
    make_wrong: Callable[[], str],
    what: str,
) -> list[str]:
    for _ in range(200):
        choices = [answer]
        while len(choices) < 4:
            c = make_wrong()
            if c not in choices:
                choices.append(c)
        if first_tokens_distinct(tokenizer, choices):
            return choices
    raise BroadError(f"no four options with distinct first tokens for {what} {answer!r}")


def _plan_item(t: BroadTemplate, i: int, cfg: BroadConfig, pool: list[str], tokenizer: object | None) -> dict:
    rng = np.random.default_rng(derive_seed(cfg.seed, "broad", t.name, i, "plan"))
    item: dict = {"template": t.name, "index": i, "base": f"broad-{t.name.removeprefix('broad-')}-{i:04d}"}
    if t.name == "broad-word":
        answer = pool[int(rng.integers(0, len(pool)))]
        item["text"] = answer
        choices = _options(rng, tokenizer, answer, lambda: _pick(rng, pool, 1, {answer})[0], "word")
    elif t.name == "broad-phrase":
        n = int(rng.integers(2, 5))
        answer = " ".join(_pick(rng, pool, n, set()))
        item["text"] = answer
        choices = _options(
            rng,
            tokenizer,
            answer,
            lambda: " ".join(_pick(rng, pool, int(rng.integers(2, 5)), set(answer.split()))),
            "phrase",
        )
    elif t.name == "broad-word-in-list":
        spoken = _pick(rng, pool, int(rng.integers(5, 9)), set())
        answer = spoken[int(rng.integers(0, len(spoken)))]
        item["text"] = ", ".join(spoken)
        choices = _options(rng, tokenizer, answer, lambda: _pick(rng, pool, 1, set(spoken))[0], "word")
    elif t.name in ("broad-instrument", "broad-sound"):
        labels = tuple(GM_INSTRUMENTS) if t.name == "broad-instrument" else SOUNDS
        answer = labels[(i + int(derive_seed(cfg.seed, t.name)) % len(labels)) % len(labels)]
        item["text"] = None
        choices = _options(rng, tokenizer, answer, lambda: labels[int(rng.integers(0, len(labels)))], t.name)
    else:
        raise BroadError(f"unknown template {t.name!r}")
    perm = rng.permutation(4)
    item["choices"] = [choices[int(j)] for j in perm]
    item["answer"] = answer
    item["prior"] = [c for c in item["choices"] if c != answer][int(rng.integers(0, 3))]
    item["question"] = t.questions[int(rng.integers(0, len(t.questions)))]
    train_hints = lb.HINT_VARIANTS["train"]
    item["hint_variant"] = train_hints[i % len(train_hints)]
    item["snr_db"] = round(float(rng.uniform(*t.snr_db)), 2)
    item["audio_seed"] = derive_seed(cfg.seed, "broad", t.name, i, "audio")
    return item


def plan(cfg: BroadConfig | None = None, tokenizer: object | None = None) -> list[dict]:
    """Base items (answer, options, prior, spoken text, hint variant), deterministic in the config."""
    cfg = cfg or BroadConfig()
    for name in cfg.templates:
        if name not in TEMPLATES:
            raise BroadError(f"unknown template {name!r}; known: {', '.join(TEMPLATES)}")
    needs_words = any(TEMPLATES[n].task == "speech" for n in cfg.templates)
    pool = word_pool(tokenizer) if needs_words else []
    return [
        _plan_item(TEMPLATES[name], i, cfg, pool, tokenizer)
        for name in cfg.templates
        for i in range(cfg.size(name))
    ]


# ----------------------------------------------------------------------------------------------
# audio


def _channel(rng: np.random.Generator) -> list[str]:
    """sox effects for the recording channel: none, a telephone band, or a small room."""
    u = rng.random()
    if u < 0.2:
        return ["sinc", "300-3400"]
    if u < 0.4:
        return ["reverb", f"{rng.uniform(20, 60):.0f}", "50", f"{rng.uniform(20, 80):.0f}"]
    return []


def _speak(rng: np.random.Generator, work: Path, text: str) -> tuple[np.ndarray, str]:
    """``text`` spoken by a random espeak-ng or flite voice; returns the 16-kHz wave and the voice."""
    raw, out = work / "s_raw.wav", work / "s16.wav"
    if rng.random() < 0.5:
        accent = ESPEAK_ACCENTS[int(rng.integers(0, len(ESPEAK_ACCENTS)))]
        variant = ESPEAK_VARIANTS[int(rng.integers(0, len(ESPEAK_VARIANTS)))]
        voice = f"{accent}+{variant}"
        speed, pitch = int(rng.integers(130, 200)), int(rng.integers(20, 80))
        snd.run_tool(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text])
        desc = f"espeak-ng {voice} s{speed} p{pitch}"
    else:
        name = FLITE_VOICES[int(rng.integers(0, len(FLITE_VOICES)))]
        stretch = f"{rng.uniform(0.8, 1.25):.2f}"
        snd.run_tool(
            ["flite", "-voice", name, "--setf", f"duration_stretch={stretch}", "-t", text, "-o", str(raw)]
        )
        desc = f"flite {name} x{stretch}"
    effects = []
    if rng.random() < 0.4:
        cents = int(rng.integers(-300, 301))
        effects += ["pitch", str(cents)]
        desc += f" pitch{cents:+d}"
    ch = _channel(rng)
    if ch:
        desc += " " + ch[0]
    y = snd.sox_to_16k(raw, out, [*effects, *ch])
    nz = np.nonzero(np.abs(y) > 1e-4)[0]
    return (y[nz[0] : nz[-1] + 1] if nz.size else y), desc


def _decay(n: int, tau_s: float) -> np.ndarray:
    return np.exp(-np.arange(n) / (tau_s * SR))


def _lowpass_noise(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    spec = np.fft.rfft(rng.normal(0, 1, n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[(f < lo) | (f > hi)] = 0
    return np.fft.irfft(spec, n)


def _sound(rng: np.random.Generator, label: str) -> np.ndarray:
    dur = float(rng.uniform(1.2, 2.2))
    n = int(dur * SR)
    t = np.arange(n) / SR
    y = np.zeros(n)
    if label == "bell":
        f0 = rng.uniform(300, 900)
        for k, (ratio, amp) in enumerate(((1.0, 1.0), (2.76, 0.6), (5.4, 0.4), (8.93, 0.25))):
            y += amp * np.sin(2 * np.pi * f0 * ratio * t + k) * _decay(n, rng.uniform(0.3, 0.9) / (k + 1))
    elif label == "knock":
        for k in range(int(rng.integers(2, 5))):
            s = int((0.1 + k * rng.uniform(0.18, 0.3)) * SR)
            m = min(int(0.08 * SR), n - s)
            if m <= 0:
                break
            tt = np.arange(m) / SR
            y[s : s + m] += np.sin(2 * np.pi * rng.uniform(90, 220) * tt) * _decay(m, 0.015)
            y[s : s + m] += 0.3 * rng.normal(0, 1, m) * _decay(m, 0.004)
    elif label == "rain":
        y += 0.3 * _lowpass_noise(rng, n, 200, 6000)
        for s in rng.integers(0, n - 200, int(rng.uniform(40, 120) * dur)):
            y[s : s + 200] += rng.normal(0, 1, 200) * _decay(200, 0.002)
    elif label == "wind":
        y = _lowpass_noise(rng, n, 100, rng.uniform(400, 900))
        y *= 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t + rng.uniform(0, 6)) ** 2
    elif label == "engine":
        f0 = rng.uniform(30, 70)
        for h in range(1, 12):
            y += np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h
        y *= 1 + 0.4 * np.sin(2 * np.pi * rng.uniform(4, 9) * t)
        y += 0.2 * _lowpass_noise(rng, n, 50, 1500)
    elif label == "chirp":
        for k in range(int(rng.integers(3, 7))):
            s = int((0.05 + k * rng.uniform(0.15, 0.3)) * SR)
            m = min(int(rng.uniform(0.05, 0.12) * SR), n - s)
            if m <= 0:
                break
            tt = np.arange(m) / SR
            f1, f2 = rng.uniform(2500, 4500), rng.uniform(1500, 3000)
            phase = 2 * np.pi * (f1 * tt + (f2 - f1) * tt**2 / (2 * tt[-1] + 1e-9))
            y[s : s + m] += np.sin(phase) * np.hanning(m)
    elif label == "heartbeat":
        period = 60.0 / rng.uniform(55, 110)
        for beat in np.arange(0.05, dur - 0.3, period):
            for off, amp in ((0.0, 1.0), (0.22, 0.7)):
                s = int((beat + off) * SR)
                m = min(int(0.1 * SR), n - s)
                if m > 0:
                    tt = np.arange(m) / SR
                    y[s : s + m] += amp * np.sin(2 * np.pi * rng.uniform(40, 70) * tt) * np.hanning(m)
    elif label == "drip":
        step = rng.uniform(0.25, 0.5)
        for s0 in np.arange(0.05, dur - 0.1, step):
            s = int(s0 * SR)
            m = min(int(0.08 * SR), n - s)
            tt = np.arange(m) / SR
            f = rng.uniform(900, 1800)
            y[s : s + m] += np.sin(2 * np.pi * (f * tt + 3000 * tt**2)) * _decay(m, 0.012)
    else:
        raise BroadError(f"unknown sound {label}")
    return y


def _instrument(rng: np.random.Generator, work: Path, label: str) -> np.ndarray:
    scale = [0, 2, 4, 5, 7, 9, 11, 12]
    base = 48 + 12 * int(rng.integers(0, 3)) if label not in ("tuba", "bass", "bassoon", "timpani") else 40
    notes = [base + scale[int(rng.integers(0, len(scale)))] for _ in range(int(rng.integers(3, 7)))]
    step = float(rng.uniform(0.25, 0.45))
    return snd.fluidsynth(
        work, GM_INSTRUMENTS[label], [(p, i * step, step * 0.9) for i, p in enumerate(notes)]
    )


def _event(item: dict, rng: np.random.Generator, work: Path) -> tuple[np.ndarray, str]:
    if item["text"] is not None:
        return _speak(rng, work, item["text"])
    if item["template"] == "broad-instrument":
        return _instrument(rng, work, item["answer"]), "fluidsynth TimGM6mb"
    return _sound(rng, item["answer"]), "numpy"


def _rows(it: dict) -> list[dict]:
    t = TEMPLATES[it["template"]]
    return twins(
        it,
        lb.HINTS[it["hint_variant"]],
        it["question"],
        dataset=DATASET,
        task=t.task,
        split=SPLIT,
        category=t.category,
        sub_category=t.sub_category,
        difficulty=difficulty(it["snr_db"]),
        source=t.source,
        snr_db=it["snr_db"],
    )


def _tool_versions() -> dict[str, str]:
    out = snd.tool_versions()
    try:
        res = subprocess.run(["flite", "--version"], capture_output=True, text=True, check=False)
        out["flite"] = [ln for ln in (res.stdout + res.stderr).splitlines() if "version" in ln][0].strip()
    except (FileNotFoundError, IndexError):
        out["flite"] = "missing"
    return out


LICENSES_TEXT = """# listen-broad: licences of the audio

Generated by `steer-audio bench --broad` ({version}). Training rows only; nothing of listen-heldout
(no Allison recording, no LibriVox clip, none of their words) is used.

| source | templates | licence |
|---|---|---|
| word list: Debian `wamerican` (SCOWL, (c) Kevin Atkinson and others) | broad-word, broad-phrase, broad-word-in-list | SCOWL's permissive licence (use, copy, modify, distribute with its notice; /usr/share/doc/wamerican/copyright) |
| espeak-ng formant synthesis | speech templates | generated output (espeak-ng is GPL-3+) |
| flite with the CMU voices kal, kal16, awb, rms, slt (Debian `flite`) | speech templates | generated output; flite and its voices: CMU's BSD-style licence (/usr/share/doc/flite/copyright) |
| fluidsynth + TimGM6mb General MIDI soundfont (Debian `timgm6mb-soundfont`) | broad-instrument | soundfont GPL-2 (Tim Brechbill); melodies are the project's |
| numpy synthesis (this project) | broad-sound | Apache-2.0 (project) |

All clips have Gaussian noise added at a per-item SNR (`snr_db`); `*-silence.wav` files are digital zeros.
The text and voice of every item are listed in `manifest.json` (`spoken`).
"""


def generate(
    out_dir: Path,
    cfg: BroadConfig | None = None,
    tokenizer: object | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write listen-broad into ``out_dir`` (listen-bench's layout) and return its manifest."""
    cfg = cfg or BroadConfig()
    out_dir = Path(out_dir)
    items = plan(cfg, tokenizer)
    rows = [r for it in items for r in _rows(it)]
    if tokenizer is not None:
        lb.check_choice_tokens(rows, tokenizer)
    (out_dir / lb.AUDIO_DIR).mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    spoken: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="listen-broad-") as tmp:
        work = Path(tmp)
        for k, it in enumerate(items):
            rng = np.random.default_rng(it["audio_seed"])
            event, voice = _event(it, rng, work)
            spoken[it["base"]] = {"text": it["text"], "voice": voice}
            y = snd.finish(event, rng, it["snr_db"], len(event) / SR + float(rng.uniform(0.3, 1.0)))
            for name, sig in ((it["base"], y), (it["base"] + "-silence", np.zeros_like(y))):
                wav = out_dir / lb.AUDIO_DIR / f"{name}.wav"
                snd.write_wav(wav, sig)
                files[f"{lb.AUDIO_DIR}/{wav.name}"] = sha256_file(wav)
            if progress is not None:
                progress(k + 1, len(items))
    write_text(out_dir / lb.DATA_JSON, json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    write_text(out_dir / lb.LICENSES_MD, LICENSES_TEXT.format(version=GENERATOR_VERSION))
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        counts.setdefault(r["template"], {}).setdefault(r["condition"], 0)
        counts[r["template"]][r["condition"]] += 1
    sources: dict[str, dict[str, str]] = {}
    if any(it["text"] is not None for it in items):
        sources["words"] = {
            "path": str(WORDS_FILE),
            "package": "wamerican",
            "sha256": sha256_file(WORDS_FILE),
        }
    if any(it["template"] == "broad-instrument" for it in items):
        sf2 = snd.soundfont()
        sources["soundfont"] = {"path": str(sf2), "package": "timgm6mb-soundfont", "sha256": sha256_file(sf2)}
    manifest = {
        "generator": GENERATOR_VERSION,
        "config": {
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
            "first_token_checked": tokenizer is not None,
        },
        "tools": _tool_versions(),
        "sources": sources,
        "heldout_words_excluded": len(heldout_vocabulary()),
        "counts": counts,
        "spoken": dict(sorted(spoken.items())),
        "json_sha256": sha256_file(out_dir / lb.DATA_JSON),
        "files": dict(sorted(files.items())),
    }
    write_text(out_dir / lb.MANIFEST_JSON, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


__all__ = [
    "GENERATOR_VERSION",
    "TEMPLATES",
    "BroadConfig",
    "BroadError",
    "default_dir",
    "generate",
    "heldout_vocabulary",
    "is_held_out",
    "plan",
    "word_pool",
]
