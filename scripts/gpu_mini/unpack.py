"""Rebuild, on the GPU machine, the mini cache and listen-bench that `pack.py` packed.

Reads ``<stash>/part-NN`` and ``<stash>/index.json``, checks every chunk's sha256, unpacks into
``<dest>/mini`` and ``<dest>/listen-bench``, dequantises the Gemma GGUF with the code `mini-setup` uses,
and checks the fp32 weights against the sha256 of the packing machine's cache (so both machines run the
same Gemma, bit for bit). Point the commands at it with ``STEER_AUDIO_CACHE=<dest>``.

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stash", type=Path, default=Path(".devstash"))
    ap.add_argument("--dest", type=Path, default=Path("/tmp/sa-cache"))
    a = ap.parse_args()
    t0 = time.time()
    index = json.loads((a.stash / "index.json").read_text())
    blob = bytearray()
    for name in sorted(index["parts"]):  # read each chunk once: hash it, then keep it for the unpacking
        chunk = (a.stash / name).read_bytes()
        if hashlib.sha256(chunk).hexdigest() != index["parts"][name]:
            raise SystemExit(f"chunk {name}: sha256 mismatch")
        blob += chunk
    import zstandard

    a.dest.mkdir(parents=True, exist_ok=True)
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)) as r:
        with tarfile.open(fileobj=r, mode="r|") as tf:
            tf.extractall(a.dest, filter="data")
    del blob
    print(f"unpacked in {time.time() - t0:.1f} s", flush=True)

    from steer_audio.bench import listen_bench as lb
    from steer_audio.io import sha256_file
    from steer_audio.models.mini import assemble, convert

    if lb.dataset_sha256(a.dest / "listen-bench") != index["bench_json_sha256"]:
        raise SystemExit("listen-bench sha256 mismatch")
    gguf = a.dest / "gemma.gguf"
    if sha256_file(gguf) != assemble.GEMMA_GGUF_SHA256:
        raise SystemExit("GGUF sha256 mismatch")
    gsd, _ = convert.load_gemma_gguf(gguf)
    out = a.dest / "mini" / assemble.GEMMA_WEIGHTS
    assemble._save_safetensors(gsd, out)
    digest = sha256_file(out)
    gguf.unlink()
    same = digest == index["gemma_sha256"]
    print(
        json.dumps(
            {"gemma_sha256": digest, "same_as_packing_machine": same, "seconds": round(time.time() - t0, 1)}
        ),
        flush=True,
    )
    if not same:
        raise SystemExit("dequantised Gemma differs from the packing machine's")


if __name__ == "__main__":
    main()
