"""listen-bench's templates: one per task, each a question pair, an answer pool and the function that makes
the event waveform of one answer label (numpy, sox, espeak-ng, fluidsynth or a real recording; sounds.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from . import BenchError
from . import sounds as snd


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
    n = int(dur * snd.SR)
    t = np.arange(n) / snd.SR
    if label == "beep":
        y = np.sin(2 * np.pi * rng.uniform(500, 1500) * t)
    elif label == "hiss":
        y = rng.normal(0, 1, n)
    elif label == "whistle":
        f0 = rng.uniform(600, 1200)
        y = np.sin(2 * np.pi * (f0 * t + f0 * t**2 / dur))
    elif label == "clicks":
        y = np.zeros(n)
        step = int(snd.SR / rng.uniform(8, 15))
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
    return y * snd.envelope(n)


def _make_count(rng: np.random.Generator, work: Path, label: str) -> np.ndarray:
    k = int(label)
    f = rng.uniform(500, 1500)
    parts = []
    for _ in range(k):
        parts.append(snd.tone(f, float(rng.uniform(0.08, 0.14))))
        parts.append(np.zeros(int(rng.uniform(0.15, 0.3) * snd.SR)))
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
    snd.run_tool(["sox", "-D", "-n", "-r", str(snd.SR), "-b", "16", "-c", "1", str(out), *eff, "gain", "-6"])
    y, _ = sf.read(str(out), dtype="float64")
    return np.asarray(y)


INSTRUMENTS = {"piano": 0, "organ": 19, "guitar": 24, "violin": 40, "trumpet": 56, "flute": 73}


def _melody(rng: np.random.Generator, n: int) -> list[int]:
    scale = [0, 2, 4, 5, 7, 9, 11, 12, 14, 16]
    return [60 + scale[int(rng.integers(0, len(scale)))] for _ in range(n)]


def _make_instrument(rng: np.random.Generator, work: Path, label: str) -> np.ndarray:
    notes = _melody(rng, int(rng.integers(3, 6)))
    step = float(rng.uniform(0.3, 0.45))
    return snd.fluidsynth(work, INSTRUMENTS[label], [(p, i * step, step * 0.9) for i, p in enumerate(notes)])


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
    return snd.fluidsynth(work, prog, [(p, i * step, step * 0.9) for i, p in enumerate(seq)])


def _make_notes(rng: np.random.Generator, work: Path, label: str) -> np.ndarray:
    k = int(label)
    prog = list(INSTRUMENTS.values())[int(rng.integers(0, len(INSTRUMENTS)))]
    step = float(rng.uniform(0.35, 0.5))
    return snd.fluidsynth(work, prog, [(p, i * step, step * 0.6) for i, p in enumerate(_melody(rng, k))])


ESPEAK_VOICES = ("en-us", "en-us+m3", "en-us+f3", "en-gb", "en-us+m7", "en-us+f2")


def _make_number(rng: np.random.Generator, work: Path, label: str) -> np.ndarray:
    voice = ESPEAK_VOICES[int(rng.integers(0, len(ESPEAK_VOICES)))]
    return snd.espeak(
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
    return snd.espeak(work, text, voice, speed, pitch)


def _make_allison_digit(rng: np.random.Generator, work: Path, label: str) -> np.ndarray:
    return snd.allison(rng, work, f"digits/{label}.wav")


LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _make_allison_letter(rng: np.random.Generator, work: Path, label: str) -> np.ndarray:
    return snd.allison(rng, work, f"letters/{label.lower()}.wav")


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
