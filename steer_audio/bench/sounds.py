"""Sound and voice synthesis for the generated benchmarks: the external tools (sox, espeak-ng, fluidsynth and
a General MIDI soundfont, asterisk's Allison recordings), minimal MIDI files, and the clip itself (the event
at a seeded offset over a Gaussian noise floor, 16 kHz 16-bit PCM WAV).

Every function is deterministic given its rng and the tool versions (`tool_versions()`, in each manifest)."""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from ..io import atomic_path
from . import BenchError

SR = 16_000
MAX_S = 10  # mini's audio window

#: where `asterisk-core-sounds-en-wav` itself installs the recordings (`dpkg -L`); the `sounds/en` link comes
#: only from the recommended `asterisk-core-sounds-en`, which a --no-install-recommends set-up lacks
ALLISON_DIR = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
SOUNDFONT_CANDIDATES = (
    Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf2/default-GM.sf2"),
)


def run_tool(cmd: list[str]) -> None:
    try:
        subprocess.run(cmd, check=True, capture_output=True)
    except FileNotFoundError as e:
        raise BenchError(f"{cmd[0]} is not installed (run scripts/setup_mini.sh)") from e
    except subprocess.CalledProcessError as e:
        raise BenchError(f"{' '.join(cmd)} failed: {e.stderr.decode(errors='replace')[-300:]}") from e


def sox_to_16k(src: Path, dst: Path, effects: Sequence[str] = ()) -> np.ndarray:
    run_tool(["sox", "-D", str(src), "-r", str(SR), "-c", "1", "-b", "16", str(dst), *effects])
    y, sr = sf.read(str(dst), dtype="float64")
    if sr != SR:
        raise BenchError(f"sox produced {sr} Hz for {src}")
    return np.asarray(y, dtype=np.float64)


def finish(y: np.ndarray, rng: np.random.Generator, snr_db: float, total_s: float) -> np.ndarray:
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


def write_wav(path: Path, y: np.ndarray) -> None:
    pcm = np.round(np.clip(y, -1, 1) * 32767).astype("<i2")
    with atomic_path(path) as tmp:
        sf.write(str(tmp), pcm, SR, subtype="PCM_16", format="WAV")


def envelope(n: int, attack: float = 0.01) -> np.ndarray:
    a = max(1, int(attack * SR))
    e = np.ones(n)
    e[:a] = np.linspace(0, 1, a)
    e[-a:] = np.linspace(1, 0, a)
    return e


def tone(f: float, dur: float) -> np.ndarray:
    t = np.arange(int(dur * SR)) / SR
    return np.sin(2 * np.pi * f * t) * envelope(len(t))


def midi_file(path: Path, program: int, notes: Sequence[tuple[int, float, float]], channel: int = 0) -> None:
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


def soundfont() -> Path:
    for p in SOUNDFONT_CANDIDATES:
        if p.is_file():
            return p
    raise BenchError("no General MIDI soundfont found (apt-get install timgm6mb-soundfont)")


def fluidsynth(work: Path, program: int, notes: Sequence[tuple[int, float, float]]) -> np.ndarray:
    mid, raw, out = work / "x.mid", work / "x_raw.wav", work / "x16.wav"
    midi_file(mid, program, notes)
    run_tool(
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
            str(soundfont()),
            str(mid),
        ]
    )
    y = sox_to_16k(raw, out)
    nz = np.nonzero(np.abs(y) > 1e-4)[0]
    return y[: nz[-1] + 1] if nz.size else y


def espeak(work: Path, text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    raw, out = work / "e_raw.wav", work / "e16.wav"
    run_tool(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text])
    return sox_to_16k(raw, out)


def allison(rng: np.random.Generator, work: Path, rel: str) -> np.ndarray:
    """One of Allison Smith's recordings (`digits/3.wav`, `letters/b.wav`) at 16 kHz, speed-changed by 0.9-1.1."""
    src = ALLISON_DIR / rel
    if not src.is_file():
        raise BenchError(f"{src} missing (apt-get install asterisk-core-sounds-en-wav)")
    speed = f"{rng.uniform(0.9, 1.1):.3f}"
    return sox_to_16k(src, work / "a16.wav", ["speed", speed])


def tool_versions() -> dict[str, str]:
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
