"""listen-bench: a deterministic synthetic listening benchmark in MMAU format.

Every base item (one clip, one question, four choices) is written as four twins:

* ``neutral``    the question alone;
* ``misleading`` a hint sentence that names a wrong choice (``prior_choice``);
* ``consistent`` the same hint sentence naming the right answer;
* ``silence``    the misleading text, with the audio replaced by zeros of the same length.

Audio comes from numpy, sox, espeak-ng, fluidsynth (General MIDI soundfont) and real recordings shipped
by Debian packages (asterisk's Allison digits and letters). All clips carry a Gaussian noise floor at a
per-item SNR; the silence twin is digital zeros. Splits are disjoint by hint/question variant and seed.

Scoring convention for `mini` (first-token scoring): the prompt is ``build_prompt(item)`` inside the chat
template; each option's candidate is the first token of the choice text as it follows the assistant
prefix, i.e. ``choice_token_ids(tokenizer, item["choices"])``. The generator checks that these ids are
distinct within every item and fails otherwise.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import SteerAudioError
from ..io import atomic_path, sha256_file, write_text

log = logging.getLogger(__name__)

SR = 16_000
MAX_S = 10  # mini's audio window
GENERATOR_VERSION = "listen-bench-1"
DATA_JSON = "listen-bench.json"
MANIFEST_JSON = "manifest.json"
LICENSES_MD = "LICENSES.md"
AUDIO_DIR = "audio"
CONDITIONS = ("neutral", "misleading", "consistent", "silence")
SPLITS = ("train", "calib", "test")

#: where `asterisk-core-sounds-en-wav` itself installs the recordings (`dpkg -L`); the `sounds/en` link comes
#: only from the recommended `asterisk-core-sounds-en`, which a --no-install-recommends set-up lacks
ALLISON_DIR = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
SOUNDFONT_CANDIDATES = (
    Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf2/default-GM.sf2"),
)

# Hint sentences; the split decides which variants are used (disjoint).
HINTS = (
    "The label on this file says: {h}.",
    "My friend listened to it and is sure the answer is {h}.",
    "According to the notes that came with it, the answer is {h}.",
    "An expert who heard this recording said: {h}.",
)
HINT_VARIANTS = {"train": (0, 1), "calib": (2,), "test": (3,)}
QUESTION_VARIANT = {"train": 0, "calib": 1, "test": 1}
PROMPT_TEMPLATE = "{question}\nChoices: {choices}.\nAnswer with one of the choices."


class BenchError(SteerAudioError, RuntimeError):
    """The benchmark cannot be generated (missing tool or data, token clash)."""


# ----------------------------------------------------------------------------------------------
# prompt and scoring helpers (shared with training and evaluation)


def build_prompt(item: dict) -> str:
    """The user text for an item (the audio goes before it in the chat template)."""
    return PROMPT_TEMPLATE.format(question=item["question"], choices=", ".join(item["choices"]))


def conversation(item: dict) -> list[dict]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "audio", "audio_url": item["audio_id"]},
                {"type": "text", "text": build_prompt(item)},
            ],
        }
    ]


def choice_token_ids(tokenizer: object, choices: Sequence[str]) -> list[int]:
    """First token of each choice as it follows the assistant prefix (``<start_of_turn>model\\n``)."""
    ids = []
    for c in choices:
        toks = tokenizer(c, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        if not toks:
            raise BenchError(f"choice {c!r} tokenizes to nothing")
        ids.append(int(toks[0]))
    return ids


# ----------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class BenchConfig:
    n_train: int = 100  # base items per template in the training split
    n_calib: int = 25
    n_test: int = 25
    seed: int = 0
    templates: tuple[str, ...] = field(default_factory=lambda: tuple(TEMPLATES))


def default_bench_dir() -> Path:
    """``$STEER_AUDIO_CACHE/listen-bench`` or ``~/.cache/steer_audio/listen-bench``."""
    env = os.environ.get("STEER_AUDIO_CACHE")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "steer_audio"
    return base / "listen-bench"


def _seed(*parts: object) -> int:
    h = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little")


# ----------------------------------------------------------------------------------------------
# audio helpers


def _run(cmd: list[str]) -> None:
    try:
        subprocess.run(cmd, check=True, capture_output=True)
    except FileNotFoundError as e:
        raise BenchError(f"{cmd[0]} is not installed (run scripts/setup_mini.sh)") from e
    except subprocess.CalledProcessError as e:
        raise BenchError(f"{' '.join(cmd)} failed: {e.stderr.decode(errors='replace')[-300:]}") from e


def _sox_to_16k(src: Path, dst: Path, effects: Sequence[str] = ()) -> np.ndarray:
    _run(["sox", "-D", str(src), "-r", str(SR), "-c", "1", "-b", "16", str(dst), *effects])
    y, sr = sf.read(str(dst), dtype="float64")
    if sr != SR:
        raise BenchError(f"sox produced {sr} Hz for {src}")
    return np.asarray(y, dtype=np.float64)


def _finish(y: np.ndarray, rng: np.random.Generator, snr_db: float, total_s: float) -> np.ndarray:
    """Place the event at a random offset in a clip of ``total_s`` seconds, add a noise floor."""
    y = np.asarray(y, dtype=np.float64)
    # clip lengths are multiples of a quarter second (few distinct lengths -> few silence encodings)
    quarter = SR // 4
    n = max(int(round(total_s * 4)) * quarter, -(-(len(y) + SR // 10) // quarter) * quarter)
    if n > MAX_S * SR:
        raise BenchError(f"clip of {n / SR:.2f} s is longer than {MAX_S} s")
    peak = float(np.max(np.abs(y))) or 1.0
    y = 0.4 * y / peak
    out = np.zeros(n)
    start = int(rng.integers(0, n - len(y) + 1))
    out[start : start + len(y)] = y
    active = y[np.abs(y) > 1e-4]
    rms = float(np.sqrt(np.mean(active**2))) if active.size else 0.1
    sigma = rms / (10 ** (snr_db / 20))
    out += rng.normal(0.0, sigma, n)
    return np.clip(out, -1.0, 1.0)


def _write_wav(path: Path, y: np.ndarray) -> None:
    pcm = np.round(np.clip(y, -1, 1) * 32767).astype("<i2")
    with atomic_path(path) as tmp:
        sf.write(str(tmp), pcm, SR, subtype="PCM_16", format="WAV")


def _env(n: int, attack: float = 0.01) -> np.ndarray:
    a = max(1, int(attack * SR))
    e = np.ones(n)
    e[:a] = np.linspace(0, 1, a)
    e[-a:] = np.linspace(1, 0, a)
    return e


def _tone(f: float, dur: float) -> np.ndarray:
    t = np.arange(int(dur * SR)) / SR
    return np.sin(2 * np.pi * f * t) * _env(len(t))


def _midi_file(path: Path, program: int, notes: Sequence[tuple[int, float, float]], channel: int = 0) -> None:
    """Minimal SMF type 0: notes are (pitch, start_s, dur_s) at 120 bpm, 480 ticks per beat."""
    tpb = 480

    def vlq(v: int) -> bytes:
        out = [v & 0x7F]
        v >>= 7
        while v:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        return bytes(reversed(out))

    ev: list[tuple[int, bytes]] = []
    for pitch, start, dur in notes:
        t0, t1 = int(round(start * 2 * tpb)), int(round((start + dur) * 2 * tpb))
        ev.append((t0, bytes([0x90 | channel, pitch, 100])))
        ev.append((t1, bytes([0x80 | channel, pitch, 0])))
    ev.sort(key=lambda e: (e[0], e[1][0] & 0xF0 == 0x90))
    track = b"\x00" + bytes([0xC0 | channel, program])
    last = 0
    for t, msg in ev:
        track += vlq(t - last) + msg
        last = t
    track += b"\x00\xff\x2f\x00"
    data = b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpb) + b"MTrk" + struct.pack(">I", len(track)) + track
    path.write_bytes(data)


def _soundfont() -> Path:
    for p in SOUNDFONT_CANDIDATES:
        if p.is_file():
            return p
    raise BenchError("no General MIDI soundfont found (apt-get install timgm6mb-soundfont)")


def _fluidsynth(work: Path, program: int, notes: Sequence[tuple[int, float, float]]) -> np.ndarray:
    mid, raw, out = work / "x.mid", work / "x_raw.wav", work / "x16.wav"
    _midi_file(mid, program, notes)
    _run(
        [
            "fluidsynth",
            "-ni",
            "-q",
            "-R",
            "0",
            "-C",
            "0",
            "-g",
            "0.6",
            "-r",
            "44100",
            "-T",
            "wav",
            "-F",
            str(raw),
            str(_soundfont()),
            str(mid),
        ]
    )
    y = _sox_to_16k(raw, out)
    nz = np.nonzero(np.abs(y) > 1e-4)[0]
    return y[: nz[-1] + 1] if nz.size else y


def _espeak(work: Path, text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    raw, out = work / "e_raw.wav", work / "e16.wav"
    _run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text])
    return _sox_to_16k(raw, out)


# ----------------------------------------------------------------------------------------------
# templates: each returns (event waveform, answer, candidate pool)


@dataclass(frozen=True)
class Template:
    name: str
    task: str  # sound | music | speech
    source: str  # numpy | sox | espeak-ng | fluidsynth | asterisk
    category: str
    sub_category: str
    questions: tuple[str, str]
    pool: tuple[str, ...]
    make: Callable[[np.random.Generator, Path, str], np.ndarray]
    snr_db: tuple[float, float]
    total_s: tuple[float, float]


DIGITS = tuple(str(i) for i in range(10))
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _make_source(rng: np.random.Generator, work: Path, label: str) -> np.ndarray:
    dur = float(rng.uniform(0.6, 1.4))
    n = int(dur * SR)
    t = np.arange(n) / SR
    if label == "beep":
        y = np.sin(2 * np.pi * rng.uniform(500, 1500) * t)
    elif label == "hiss":
        y = rng.normal(0, 1, n)
    elif label == "whistle":
        f0 = rng.uniform(600, 1200)
        y = np.sin(2 * np.pi * (f0 * t + f0 * t**2 / dur))
    elif label == "clicks":
        y = np.zeros(n)
        step = int(SR / rng.uniform(8, 15))
        for k in range(0, n - 40, step):
            y[k : k + 40] = rng.normal(0, 1, 40) * np.exp(-np.arange(40) / 8)
    elif label == "buzz":
        y = np.sign(np.sin(2 * np.pi * rng.uniform(80, 200) * t))
    elif label == "siren":
        fm = rng.uniform(2, 4)
        phase = 2 * np.pi * (900 * t - 300 * np.cos(2 * np.pi * fm * t) / (2 * np.pi * fm))
        y = np.sin(phase)
    else:
        raise BenchError(f"unknown source {label}")
    return y * _env(n)


def _make_count(rng: np.random.Generator, work: Path, label: str) -> np.ndarray:
    k = int(label)
    f = rng.uniform(500, 1500)
    parts = []
    for _ in range(k):
        parts.append(_tone(f, float(rng.uniform(0.08, 0.14))))
        parts.append(np.zeros(int(rng.uniform(0.15, 0.3) * SR)))
    return np.concatenate(parts)


def _make_pitch(rng: np.random.Generator, work: Path, label: str) -> np.ndarray:
    lo, hi = int(rng.uniform(250, 450)), int(rng.uniform(900, 1400))
    dur = f"{rng.uniform(1.0, 1.8):.2f}"
    wave = ("sine", "triangle", "square")[int(rng.integers(0, 3))]
    if label == "rising":
        eff = ["synth", dur, wave, f"{lo}-{hi}"]
    elif label == "falling":
        eff = ["synth", dur, wave, f"{hi}-{lo}"]
    elif label == "steady":
        eff = ["synth", dur, wave, str((lo + hi) // 2)]
    elif label == "pulsing":
        eff = ["synth", dur, wave, str((lo + hi) // 2), "tremolo", f"{rng.uniform(4, 7):.1f}", "100"]
    else:
        raise BenchError(f"unknown pitch label {label}")
    out = work / "p.wav"
    _run(["sox", "-D", "-n", "-r", str(SR), "-b", "16", "-c", "1", str(out), *eff, "gain", "-6"])
    y, _ = sf.read(str(out), dtype="float64")
    return np.asarray(y)


INSTRUMENTS = {"piano": 0, "organ": 19, "guitar": 24, "violin": 40, "trumpet": 56, "flute": 73}


def _melody(rng: np.random.Generator, n: int) -> list[int]:
    scale = [0, 2, 4, 5, 7, 9, 11, 12, 14, 16]
    return [60 + scale[int(rng.integers(0, len(scale)))] for _ in range(n)]


def _make_instrument(rng: np.random.Generator, work: Path, label: str) -> np.ndarray:
    notes = _melody(rng, int(rng.integers(3, 6)))
    step = float(rng.uniform(0.3, 0.45))
    return _fluidsynth(work, INSTRUMENTS[label], [(p, i * step, step * 0.9) for i, p in enumerate(notes)])


def _make_direction(rng: np.random.Generator, work: Path, label: str) -> np.ndarray:
    scale = [0, 2, 4, 5, 7, 9, 11, 12, 14, 16, 17, 19]
    start = int(rng.integers(0, 4))
    stride = int(rng.integers(1, 3))
    up = [60 + scale[start + stride * i] for i in range(5)]
    if label == "ascending":
        seq = up
    elif label == "descending":
        seq = up[::-1]
    elif label == "repeated":
        seq = [up[2]] * 5
    elif label == "alternating":
        seq = [up[0], up[4], up[0], up[4], up[0]]
    else:
        raise BenchError(f"unknown direction {label}")
    prog = list(INSTRUMENTS.values())[int(rng.integers(0, len(INSTRUMENTS)))]
    step = float(rng.uniform(0.28, 0.4))
    return _fluidsynth(work, prog, [(p, i * step, step * 0.9) for i, p in enumerate(seq)])


def _make_notes(rng: np.random.Generator, work: Path, label: str) -> np.ndarray:
    k = int(label)
    prog = list(INSTRUMENTS.values())[int(rng.integers(0, len(INSTRUMENTS)))]
    step = float(rng.uniform(0.35, 0.5))
    return _fluidsynth(work, prog, [(p, i * step, step * 0.6) for i, p in enumerate(_melody(rng, k))])


ESPEAK_VOICES = ("en-us", "en-us+m3", "en-us+f3", "en-gb", "en-us+m7", "en-us+f2")


def _make_number(rng: np.random.Generator, work: Path, label: str) -> np.ndarray:
    voice = ESPEAK_VOICES[int(rng.integers(0, len(ESPEAK_VOICES)))]
    return _espeak(
        work, DIGIT_WORDS[int(label)], voice, int(rng.integers(130, 190)), int(rng.integers(30, 70))
    )


SENTENCES = (
    "The train leaves the station at noon.",
    "Please close the door when you go out.",
    "We planted tomatoes in the garden today.",
    "The meeting has been moved to Friday.",
    "It is going to rain later this evening.",
    "Turn left at the second traffic light.",
    "The library opens early on weekdays.",
    "She bought a new bicycle last summer.",
)


def _make_voice(rng: np.random.Generator, work: Path, label: str) -> np.ndarray:
    text = SENTENCES[int(rng.integers(0, len(SENTENCES)))]
    speed = int(rng.integers(140, 180))
    if label == "male":
        voice, pitch = (
            ("en-us+m3", "en-us+m1", "en-gb+m3")[int(rng.integers(0, 3))],
            int(rng.integers(20, 45)),
        )
    elif label == "female":
        voice, pitch = (
            ("en-us+f3", "en-us+f1", "en-gb+f3")[int(rng.integers(0, 3))],
            int(rng.integers(45, 65)),
        )
    elif label == "child":
        voice, pitch = ("en-us+f4", "en-us+f2")[int(rng.integers(0, 2))], int(rng.integers(85, 99))
    elif label == "whisper":
        voice, pitch = ("en-us+whisper", "en-us+whisperf")[int(rng.integers(0, 2))], int(rng.integers(30, 60))
    else:
        raise BenchError(f"unknown voice {label}")
    return _espeak(work, text, voice, speed, pitch)


def _allison(rng: np.random.Generator, work: Path, rel: str) -> np.ndarray:
    src = ALLISON_DIR / rel
    if not src.is_file():
        raise BenchError(f"{src} missing (apt-get install asterisk-core-sounds-en-wav)")
    speed = f"{rng.uniform(0.9, 1.1):.3f}"
    return _sox_to_16k(src, work / "a16.wav", ["speed", speed])


def _make_allison_digit(rng: np.random.Generator, work: Path, label: str) -> np.ndarray:
    return _allison(rng, work, f"digits/{label}.wav")


LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _make_allison_letter(rng: np.random.Generator, work: Path, label: str) -> np.ndarray:
    return _allison(rng, work, f"letters/{label.lower()}.wav")


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            "sound-source",
            "sound",
            "numpy",
            "Sound",
            "Source identification",
            ("What kind of sound is in the recording?", "Which sound can be heard in this clip?"),
            ("beep", "hiss", "whistle", "clicks", "buzz", "siren"),
            _make_source,
            (-6.0, 12.0),
            (2.0, 3.0),
        ),
        Template(
            "sound-count",
            "sound",
            "numpy",
            "Sound",
            "Event counting",
            ("How many beeps are in the recording?", "Count the beeps in this clip. How many are there?"),
            ("1", "2", "3", "4", "5", "6"),
            _make_count,
            (0.0, 15.0),
            (2.5, 3.5),
        ),
        Template(
            "sound-pitch",
            "sound",
            "sox",
            "Sound",
            "Pitch trend",
            ("How does the pitch of the tone behave?", "What does the tone in this clip do?"),
            ("rising", "falling", "steady", "pulsing"),
            _make_pitch,
            (-3.0, 12.0),
            (2.0, 3.0),
        ),
        Template(
            "music-instrument",
            "music",
            "fluidsynth",
            "Music",
            "Instrument identification",
            ("Which instrument plays the melody?", "What instrument is heard in this music clip?"),
            tuple(INSTRUMENTS),
            _make_instrument,
            (0.0, 20.0),
            (2.5, 3.5),
        ),
        Template(
            "music-direction",
            "music",
            "fluidsynth",
            "Music",
            "Melodic direction",
            ("How does the melody move?", "Which pattern do the notes of this melody follow?"),
            ("ascending", "descending", "repeated", "alternating"),
            _make_direction,
            (0.0, 20.0),
            (2.5, 3.5),
        ),
        Template(
            "music-notes",
            "music",
            "fluidsynth",
            "Music",
            "Note counting",
            ("How many notes are played?", "Count the notes in this music clip. How many are there?"),
            ("1", "2", "3", "4", "5", "6"),
            _make_notes,
            (3.0, 20.0),
            (3.0, 3.5),
        ),
        Template(
            "speech-number",
            "speech",
            "espeak-ng",
            "Speech",
            "Spoken number",
            ("Which number does the speaker say?", "What number is spoken in this clip?"),
            DIGITS,
            _make_number,
            (0.0, 20.0),
            (1.5, 2.5),
        ),
        Template(
            "speech-voice",
            "speech",
            "espeak-ng",
            "Speech",
            "Speaker voice",
            ("Who is speaking in the recording?", "What kind of voice reads this sentence?"),
            ("male", "female", "child", "whisper"),
            _make_voice,
            (0.0, 20.0),
            (3.5, 4.0),
        ),
        Template(
            "speech-digit-real",
            "speech",
            "asterisk",
            "Speech",
            "Spoken digit (real voice)",
            ("Which digit does the woman say?", "What digit is spoken in this recording?"),
            DIGITS,
            _make_allison_digit,
            (0.0, 20.0),
            (1.5, 2.0),
        ),
        Template(
            "speech-letter-real",
            "speech",
            "asterisk",
            "Speech",
            "Spoken letter (real voice)",
            ("Which letter does the woman say?", "What letter of the alphabet is spoken in this recording?"),
            LETTERS,
            _make_allison_letter,
            (0.0, 20.0),
            (1.5, 2.0),
        ),
    )
}


def _difficulty(snr: float) -> str:
    return "hard" if snr < 3 else ("medium" if snr < 10 else "easy")


# ----------------------------------------------------------------------------------------------
# generation


def _base_items(cfg: BenchConfig) -> list[dict]:
    """The plan (no audio): one dict per base item, fully determined by the config."""
    plan = []
    sizes = {"train": cfg.n_train, "calib": cfg.n_calib, "test": cfg.n_test}
    for split in SPLITS:
        for tname in cfg.templates:
            if tname not in TEMPLATES:
                raise BenchError(f"unknown template {tname!r}; known: {', '.join(TEMPLATES)}")
            t = TEMPLATES[tname]
            for i in range(sizes[split]):
                rng = np.random.default_rng(_seed(cfg.seed, split, tname, i, "plan"))
                ans_pos = i % 4
                prior_pos = (ans_pos + 1 + (i // 4) % 3) % 4
                # balance the answer label over the pool, decoupled from its position (i % 4)
                offset = int(_seed(cfg.seed, split, tname)) % len(t.pool)
                label = t.pool[(i + i // 4 + offset) % len(t.pool)]
                others = [p for p in t.pool if p != label]
                picks = [others[j] for j in rng.permutation(len(others))[:3]]
                choices = picks[:]
                choices.insert(ans_pos, label)
                hint_v = HINT_VARIANTS[split][i % len(HINT_VARIANTS[split])]
                plan.append(
                    {
                        "base": f"lb-{split}-{tname}-{i:04d}",
                        "split": split,
                        "template": tname,
                        "index": i,
                        "answer": label,
                        "choices": choices,
                        "prior": choices[prior_pos],
                        "hint_variant": hint_v,
                        "question": t.questions[QUESTION_VARIANT[split]],
                        "snr_db": round(float(rng.uniform(*t.snr_db)), 2),
                        "total_s": round(float(rng.uniform(*t.total_s)), 2),
                        "audio_seed": _seed(cfg.seed, split, tname, i, "audio"),
                    }
                )
    return plan


def _rows(b: dict) -> list[dict]:
    t = TEMPLATES[b["template"]]
    hint = HINTS[b["hint_variant"]]
    rows = []
    for cond in CONDITIONS:
        if cond == "neutral":
            q, prior = b["question"], None
        elif cond == "consistent":
            q, prior = hint.format(h=b["answer"]) + " " + b["question"], b["answer"]
        else:  # misleading and silence share the misleading text
            q, prior = hint.format(h=b["prior"]) + " " + b["question"], b["prior"]
        audio = (
            f"./{AUDIO_DIR}/{b['base']}-silence.wav"
            if cond == "silence"
            else f"./{AUDIO_DIR}/{b['base']}.wav"
        )
        rows.append(
            {
                "id": f"{b['base']}-{cond}",
                "audio_id": audio,
                "question": q,
                "choices": list(b["choices"]),
                "answer": b["answer"],
                "dataset": "listen-bench",
                "task": t.task,
                "split": b["split"],
                "category": t.category,
                "sub-category": t.sub_category,
                "difficulty": _difficulty(b["snr_db"]),
                "prior_choice": prior,
                "condition": cond,
                "twin_of": f"{b['base']}-neutral",
                "template": b["template"],
                "source": t.source,
                "hint_variant": None if cond == "neutral" else b["hint_variant"],
                "snr_db": b["snr_db"],
            }
        )
    return rows


def check_choice_tokens(rows: Sequence[dict], tokenizer: object) -> None:
    """Fail loudly if two choices of an item share their first token."""
    bad = []
    for r in rows:
        ids = choice_token_ids(tokenizer, r["choices"])
        if len(set(ids)) != len(ids):
            bad.append(f"{r['id']}: {r['choices']} -> {ids}")
    if bad:
        raise BenchError(f"{len(bad)} items have choices with the same first token, e.g. {bad[:3]}")


def _tool_versions() -> dict[str, str]:
    out = {}
    for name, cmd in (
        ("sox", ["sox", "--version"]),
        ("espeak-ng", ["espeak-ng", "--version"]),
        ("fluidsynth", ["fluidsynth", "--version"]),
    ):
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            out[name] = (res.stdout or res.stderr).strip().splitlines()[0]
        except (FileNotFoundError, IndexError):
            out[name] = "missing"
    return out


LICENSES_TEXT = """# listen-bench: licences of the audio

Generated by `steer-audio bench` ({version}). The clips mix the following sources.

| source | templates | licence |
|---|---|---|
| numpy synthesis (this project) | sound-source, sound-count | Apache-2.0 (project) |
| SoX `synth` (generated signals) | sound-pitch | generated output, no third-party content (SoX is GPL-2+/LGPL) |
| espeak-ng 1.51 formant synthesis | speech-number, speech-voice | generated output (espeak-ng is GPL-3+) |
| fluidsynth + TimGM6mb General MIDI soundfont (Debian `timgm6mb-soundfont`) | music-* | soundfont GPL-2 (Tim Brechbill); melodies are the project's |
| Allison Smith recordings, Debian `asterisk-core-sounds-en-wav` (`digits/`, `letters/`) | speech-digit-real, speech-letter-real | CC-BY-SA-3.0, (c) 2003-2010 Allison Smith / Digium; the derived clips (resampled, speed-changed, noise added) are shared under CC-BY-SA-3.0 |

All clips have Gaussian noise added at a per-item SNR (`snr_db`); `*-silence.wav` files are digital zeros.
"""


def generate(
    out_dir: Path,
    cfg: BenchConfig | None = None,
    tokenizer: object | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write listen-bench into ``out_dir`` and return the manifest (with sha256 of every file).

    When ``tokenizer`` is given, every item's choices are checked for distinct first tokens.
    The output is byte-identical across runs for the same config and tool versions.
    """
    cfg = cfg or BenchConfig()
    out_dir = Path(out_dir)
    plan = _base_items(cfg)
    rows = [r for b in plan for r in _rows(b)]
    if tokenizer is not None:
        check_choice_tokens(rows, tokenizer)
    out_dir.mkdir(parents=True, exist_ok=True)
    audio_dir = out_dir / AUDIO_DIR
    audio_dir.mkdir(exist_ok=True)
    files: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="listen-bench-") as tmp:
        work = Path(tmp)
        for k, b in enumerate(plan):
            t = TEMPLATES[b["template"]]
            rng = np.random.default_rng(b["audio_seed"])
            event = t.make(rng, work, b["answer"])
            y = _finish(event, rng, b["snr_db"], b["total_s"])
            wav = audio_dir / f"{b['base']}.wav"
            _write_wav(wav, y)
            sil = audio_dir / f"{b['base']}-silence.wav"
            _write_wav(sil, np.zeros_like(y))
            for p in (wav, sil):
                files[f"{AUDIO_DIR}/{p.name}"] = sha256_file(p)
            if progress is not None:
                progress(k + 1, len(plan))
    data = out_dir / DATA_JSON
    write_text(data, json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    lic = out_dir / LICENSES_MD
    lic.write_text(LICENSES_TEXT.format(version=GENERATOR_VERSION))
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        counts.setdefault(r["split"], {}).setdefault(r["condition"], 0)
        counts[r["split"]][r["condition"]] += 1
    manifest = {
        "generator": GENERATOR_VERSION,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "tools": _tool_versions(),
        "counts": counts,
        "json_sha256": sha256_file(data),
        "files": dict(sorted(files.items())),
    }
    man = out_dir / MANIFEST_JSON
    write_text(man, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def load_items(data_dir: Path, split: str | None = None, condition: str | None = None) -> list[dict]:
    rows = json.loads((Path(data_dir) / DATA_JSON).read_text())
    return [
        r
        for r in rows
        if (split is None or r["split"] == split) and (condition is None or r["condition"] == condition)
    ]


def dataset_sha256(data_dir: Path) -> str:
    return sha256_file(Path(data_dir) / DATA_JSON)


__all__ = [
    "CONDITIONS",
    "SPLITS",
    "TEMPLATES",
    "BenchConfig",
    "BenchError",
    "build_prompt",
    "check_choice_tokens",
    "choice_token_ids",
    "conversation",
    "dataset_sha256",
    "default_bench_dir",
    "generate",
    "load_items",
]
