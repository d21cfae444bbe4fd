"""Rebuild, on the GPU machine, the embedded model's cache and the bench folders that `pack.py` packed.

Reads ``<stash>/part-NN`` and ``<stash>/index.json``, checks every chunk's sha256, unpacks into ``<dest>``,
dequantises the LM's GGUF with the code `mini-setup` uses, and checks the fp32 weights against the sha256
of the packing machine's cache (so both machines run the same LM, bit for bit). For qmini, each bench's
FLAC files are written back as the original 16-bit wavs and checked against the bench manifest's sha256.
Point the commands at it with ``STEER_AUDIO_CACHE=<dest>``. A ``--benches-only`` pack (bench folders
alone, e.g. listen-broad) is unpacked into a ``<dest>`` that already holds the model: only its FLACs are
written back and checked. Give it its own stash (e.g. ``.devstash-broad``): its chunks are named alike.

Usage: python scripts/gpu_mini/unpack.py --stash .devstash --dest /tmp/sa-cache
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
import time
from pathlib import Path


class _Chunks(io.RawIOBase):
    """The chunks as one read-only stream; each chunk is hashed as it is read and checked at its end."""

    def __init__(self, stash: Path, parts: dict[str, str]) -> None:
        self.names = sorted(parts)
        self.parts = parts
        self.stash = stash
        self.cur: io.BufferedReader | None = None
        self.h = hashlib.sha256()
        self.i = -1

    def readable(self) -> bool:
        return True

    def _next(self) -> bool:
        if self.cur is not None:
            self.cur.close()
            if self.h.hexdigest() != self.parts[self.names[self.i]]:
                raise SystemExit(f"chunk {self.names[self.i]}: sha256 mismatch")
        self.i += 1
        if self.i >= len(self.names):
            self.cur = None
            return False
        self.cur = open(self.stash / self.names[self.i], "rb")  # noqa: SIM115
        self.h = hashlib.sha256()
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        while True:
            if self.cur is None and not self._next():
                return 0
            assert self.cur is not None
            n = self.cur.readinto(b)
            if n:
                self.h.update(memoryview(b)[:n])
                return n
            if not self._next():
                return 0


def _flac_to_wav(bench: Path) -> None:
    import soundfile as sf

    from steer_audio.bench import listen_bench as lb
    from steer_audio.io import sha256_file

    man = json.loads((bench / lb.MANIFEST_JSON).read_text())
    if sha256_file(bench / lb.DATA_JSON) != man["json_sha256"]:
        raise SystemExit(f"{bench.name}: json sha256 mismatch")
    for rel, digest in man["files"].items():
        flac = bench / (rel[: -len(".wav")] + ".flac")
        y, sr = sf.read(str(flac), dtype="int16")
        sf.write(str(bench / rel), y, sr, subtype="PCM_16", format="WAV")
        if sha256_file(bench / rel) != digest:
            raise SystemExit(f"{bench.name}/{rel}: wav sha256 differs from the bench manifest")
        flac.unlink()


def unpack_qmini(index: dict, dest: Path) -> dict:
    from steer_audio.io import sha256_file
    from steer_audio.models.mini import parts
    from steer_audio.models.qmini import assemble as qa

    for name, digest in index["benches"].items():
        _flac_to_wav(dest / name)
        if sha256_file(dest / name / "listen-bench.json") != digest:
            raise SystemExit(f"{name}: json sha256 mismatch")
    if index.get("benches_only"):
        return {"benches_only": sorted(index["benches"])}
    gguf = dest / "qwen.gguf"
    if sha256_file(gguf) != qa.QWEN_GGUF_SHA256:
        raise SystemExit("GGUF sha256 mismatch")
    sd, _ = qa.load_qwen_gguf(gguf)
    out = dest / "qmini" / qa.QWEN_WEIGHTS
    parts.save_safetensors(sd, out)
    del sd
    gguf.unlink()
    return {
        "qwen_sha256": sha256_file(out),
        "same_as_packing_machine": sha256_file(out) == index["qwen_sha256"],
    }


def unpack_mini(index: dict, dest: Path) -> dict:
    from steer_audio.bench import listen_bench as lb
    from steer_audio.io import sha256_file
    from steer_audio.models.mini import assemble, convert

    if lb.dataset_sha256(dest / "listen-bench") != index["bench_json_sha256"]:
        raise SystemExit("listen-bench sha256 mismatch")
    gguf = dest / "gemma.gguf"
    if sha256_file(gguf) != assemble.GEMMA_GGUF_SHA256:
        raise SystemExit("GGUF sha256 mismatch")
    gsd, _ = convert.load_gemma_gguf(gguf)
    out = dest / "mini" / assemble.GEMMA_WEIGHTS
    assemble._save_safetensors(gsd, out)
    digest = sha256_file(out)
    gguf.unlink()
    return {"gemma_sha256": digest, "same_as_packing_machine": digest == index["gemma_sha256"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stash", type=Path, default=Path(".devstash"))
    ap.add_argument("--dest", type=Path, default=Path("/tmp/sa-cache"))
    a = ap.parse_args()
    t0 = time.time()
    index = json.loads((a.stash / "index.json").read_text())
    missing = [n for n in index["parts"] if not (a.stash / n).is_file()]
    if missing:
        raise SystemExit(f"chunks missing from {a.stash}: {', '.join(missing)}")
    a.dest.mkdir(parents=True, exist_ok=True)
    stream = io.BufferedReader(_Chunks(a.stash, index["parts"]), buffer_size=1 << 22)
    if index.get("format", "tar.zst") == "tar.zst":
        import zstandard

        with (
            zstandard.ZstdDecompressor().stream_reader(stream, closefd=False) as r,
            tarfile.open(fileobj=r, mode="r|") as tf,
        ):
            tf.extractall(a.dest, filter="data")
    else:
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            tf.extractall(a.dest, filter="data")
    stream.read()  # reach the end, so the last chunk's sha256 is checked too
    print(f"unpacked in {time.time() - t0:.1f} s", flush=True)
    res = (unpack_qmini if index.get("model") == "qmini" else unpack_mini)(index, a.dest)
    res["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(res), flush=True)
    if res.get("same_as_packing_machine") is False:  # a benches-only pack has no LM to compare
        raise SystemExit("dequantised LM differs from the packing machine's")


if __name__ == "__main__":
    main()
