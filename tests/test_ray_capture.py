"""Data-parallel capture on Ray (capture/ray_backend.py) with CPU replicas of the tiny model: the merged cache
is the single-process cache file for file, byte for byte; a replica killed mid-shard is restarted and its
shard resumed; a rerun after a failed run captures only the unfinished shard.

The Ray tests are opt-in (``-m ray``); the plan and backend-registry tests run everywhere. Ray binds non-loopback addresses, so the test process must run in a network namespace
whose only interface is lo: use ``scripts/test_ray.sh``, which sets that up."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from steer_audio.capture.cache import CaptureCache
from steer_audio.capture.run import all_candidate_ids, cache_key, run_capture
from steer_audio.data import mmau
from steer_audio.errors import SteerAudioError

BATCH = 2
N_EXAMPLES = 8  # 4 batches of 2


def _loopback_only() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray (2 logical CPUs, 127.0.0.1) for the module; the backend joins it and leaves it up."""
    if not _loopback_only():
        pytest.skip(
            "Ray binds non-loopback addresses: run these tests with scripts/test_ray.sh (loopback netns)"
        )
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def single(tiny, dataset_path, tmp_path_factory):
    """The reference: the single-process capture of the same examples (run_capture, one replica here)."""
    ds = mmau.load(dataset_path)
    exs = ds.examples[:N_EXAMPLES]
    out = tmp_path_factory.mktemp("single") / "cap"
    run_capture(tiny, exs, out, batch_size=BATCH, data_sha=ds.sha256)
    key = cache_key(tiny, ds.sha256, "silence", 0)
    return exs, ds.sha256, key, all_candidate_ids(tiny, exs), out


def _ray(single, out: Path, **kw):
    from steer_audio.capture.ray_backend import run_capture_ray

    exs, sha, key, ro, _ = single
    return run_capture_ray(
        {"name": "tiny"}, ["cpu", "cpu"], exs, out, key, ro, batch_size=BATCH, data_sha=sha, **kw
    )


def _cache_files(d: Path) -> dict[str, bytes]:
    """The cache proper (index, shards, readout): what capture/cache.py reads."""
    return {
        p.name: p.read_bytes()
        for p in sorted(d.iterdir())
        if p.name == "capture_index.json" or p.suffix == ".safetensors"
    }


def _assert_same_cache(ref: Path, got: Path) -> None:
    a, b = _cache_files(ref), _cache_files(got)
    assert sorted(a) == sorted(b)
    differ = [name for name in a if a[name] != b[name]]
    assert not differ, f"files differ from the single-process cache: {differ}"
    assert not (got / "ray-shards").exists() and not (got / "ray-plan.json").exists()


def _timing(d: Path) -> dict:
    from steer_audio.io import read_json

    return read_json(d / "timing-ray.json")


@pytest.mark.ray
def test_merged_cache_is_the_single_process_cache(ray_local, single, tmp_path):
    out = tmp_path / "cap"
    cache = _ray(single, out, shard_batches=1)
    _assert_same_cache(single[4], out)
    t = _timing(out)
    assert t["shards"] == 4 and sorted(t["ran"]) == ["0", "1", "2", "3"]
    assert {a["pid"] for r in t["ran"].values() for a in r["attempts"]} and len(
        {a["pid"] for r in t["ran"].values() for a in r["attempts"]}
    ) == 2, "two replicas should share the four shards"
    ids = [e.id for e in single[0]]
    ref = CaptureCache(single[4]).load(ids)
    got = cache.load(ids)
    assert all(ref[k].equal(got[k]) for k in ref.t)


@pytest.mark.ray
def test_replica_killed_mid_shard_is_retried_and_the_cache_is_unchanged(ray_local, single, tmp_path):
    from steer_audio.capture.ray_backend import Fault

    out = tmp_path / "cap"
    # shard 1 = batches 2 and 3; its replica exits (os._exit) right after writing batch 2, first attempt only
    _ray(single, out, shard_batches=2, max_retries=2, fault=Fault(shard=1, after_batches=1))
    _assert_same_cache(single[4], out)
    r = _timing(out)["ran"]["1"]
    assert len(r["attempts"]) == 2 and r["attempts"][0]["pid"] != r["attempts"][1]["pid"]
    assert r["captured_now"] == BATCH, "the retry captures only the batch the dead replica had not written"
    assert len(_timing(out)["ran"]["0"]["attempts"]) == 1


@pytest.mark.ray
def test_replica_killed_from_outside_is_retried(ray_local, single, tmp_path):
    """SIGKILL of the replica's process (found through the shard's attempts file) once its first batch is on
    disk: Ray restarts the replica, the shard resumes, the cache is the single-process one."""
    import os
    import signal
    import threading
    import time

    from steer_audio.io import read_json

    out = tmp_path / "cap"
    shard = out / "ray-shards" / "shard-00000"  # one shard of all four batches: one replica
    box: dict = {}

    def run() -> None:
        try:
            _ray(single, out, shard_batches=4, max_retries=2)
        except BaseException as e:  # re-raised below, in the test's thread
            box["error"] = e

    t = threading.Thread(target=run)
    t.start()
    killed = None
    deadline = time.monotonic() + 300
    while t.is_alive() and killed is None and time.monotonic() < deadline:
        idx = shard / "capture_index.json"
        if idx.exists() and (shard / "attempts.json").exists() and read_json(idx)["examples"]:
            killed = read_json(shard / "attempts.json")[-1]["pid"]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.01)
    t.join()
    if "error" in box:
        raise box["error"]
    assert killed is not None, "the shard finished before its replica could be killed"
    _assert_same_cache(single[4], out)
    r = _timing(out)["ran"]["0"]
    assert [a["pid"] for a in r["attempts"]][0] == killed and len(r["attempts"]) == 2
    assert 0 < r["captured_now"] < N_EXAMPLES, "the retry resumed the shard rather than starting it again"


@pytest.mark.ray
def test_rerun_after_a_failed_run_captures_only_what_is_missing(ray_local, single, tmp_path):
    from steer_audio.capture.ray_backend import Fault

    out = tmp_path / "cap"
    # two shards of two batches; shard 1's replica dies after its first batch and may not retry
    with pytest.raises(
        SteerAudioError, match=r"shard\(s\) \[1\] failed \(shard 1: its replica died \(The actor died"
    ):
        _ray(single, out, shard_batches=2, max_retries=0, fault=Fault(shard=1, after_batches=1))
    assert not CaptureCache(out).done, "nothing is merged while a shard is unfinished"
    shards = out / "ray-shards"
    assert len(CaptureCache(shards / "shard-00000").done) == 2 * BATCH
    assert len(CaptureCache(shards / "shard-00001").done) == BATCH
    # what is on disk now lands in the merged cache as capture-00000 .. capture-00002
    kept = [
        shards / "shard-00000" / "capture-00000.safetensors",
        shards / "shard-00000" / "capture-00001.safetensors",
        shards / "shard-00001" / "capture-00000.safetensors",
    ]
    before = [p.stat() for p in kept]

    _ray(single, out, shard_batches=2, max_retries=0)
    _assert_same_cache(single[4], out)
    t = _timing(out)
    assert sorted(t["ran"]) == ["1"] and t["skipped"] == [0]
    assert t["ran"]["1"]["captured_now"] == BATCH
    # the finished batches were moved into the cache, not recomputed: same inode, same modification time
    for k, st in enumerate(before):
        now = (out / f"capture-{k:05d}.safetensors").stat()
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)


@pytest.mark.ray
def test_plan_of_another_run_is_refused(ray_local, single, tmp_path):
    from steer_audio.capture.ray_backend import Fault

    out = tmp_path / "cap"
    with pytest.raises(SteerAudioError):
        _ray(single, out, shard_batches=1, max_retries=0, fault=Fault(shard=0, after_batches=1))
    exs, sha, key, ro, _ = single
    from steer_audio.capture.ray_backend import run_capture_ray

    with pytest.raises(SteerAudioError, match="unfinished run with other examples"):
        run_capture_ray({"name": "tiny"}, ["cpu"], exs[:4], out, key, ro, batch_size=BATCH, data_sha=sha)


def test_plan_shards_are_the_single_process_batches(dataset_path):
    """Shards are whole batches of the single-process order, consecutive, each id once."""
    from steer_audio.capture.ray_backend import plan_shards
    from steer_audio.capture.run import capture_order

    exs = mmau.load(dataset_path).examples  # 12 examples
    order = [e.id for e in capture_order(exs)]
    batches = [order[i : i + 5] for i in range(0, len(order), 5)]  # 5 + 5 + 2
    for per in (1, 2, 3):
        shards = plan_shards(list(reversed(exs)), 5, replicas=2, shard_batches=per)
        assert [i for s in shards for i in s] == order
        assert shards == [[i for b in batches[k : k + per] for i in b] for k in range(0, len(batches), per)]
    # default: about 4 shards per replica, never fewer than one batch per shard
    assert len(plan_shards(exs, 1, replicas=2)) == 6
    assert len(plan_shards(exs, 1, replicas=8)) == 12
    with pytest.raises(SteerAudioError, match="batch-size"):
        plan_shards(exs, 0, replicas=2)


def test_backend_registry_routes_run_capture_parallel(tmp_path):
    """`using(name)` sends run_capture_parallel to the registered backend, with the same arguments."""
    from steer_audio.capture import backends
    from steer_audio.capture.parallel import run_capture_parallel

    seen = []
    module = type(sys)("_recording_backend")
    module.run = lambda *a, **k: seen.append((a, k)) or "cache"  # type: ignore[attr-defined]
    sys.modules["_recording_backend"] = module
    backends.register("recording", "_recording_backend:run")
    try:
        with backends.using("recording"):
            got = run_capture_parallel(
                {"name": "tiny"}, ["cpu"] * 3, [], tmp_path, {"k": 1}, [7], batch_size=4
            )
        assert got == "cache"
        assert seen == [(({"name": "tiny"}, ["cpu"] * 3, [], tmp_path, {"k": 1}, [7]), {"batch_size": 4})]
        assert backends.current().name == "processes"  # the block's choice ends with it
    finally:
        del backends.BACKENDS["recording"], sys.modules["_recording_backend"]
    with pytest.raises(SteerAudioError, match="unknown capture backend 'nope'"):
        with backends.using("nope"):
            pass
    with pytest.raises(SteerAudioError, match="needs the ray backend"):
        with backends.using("processes", address="auto"):
            pass


def _discover(tmp_path: Path, dataset_path: Path, name: str, *extra: str):
    from typer.testing import CliRunner

    from steer_audio.cli import app

    args = ["discover", "--model", "tiny", "--data", str(dataset_path), "--calib-fraction", "0.5"]
    args += ["--k", "4", "--draws", "5", "--batch-size", "2", "--out", str(tmp_path / name), *extra]
    return CliRunner().invoke(app, args)


@pytest.mark.ray
def test_cli_backend_ray_writes_the_single_process_run(ray_local, dataset_path, tmp_path):
    """`discover --backend ray --devices 2` (the pipeline's data-parallel path on Ray): the same capture cache,
    file for file, and the same specialist heads as one process."""
    one = _discover(tmp_path, dataset_path, "one")
    assert one.exit_code == 0, one.output
    two = _discover(tmp_path, dataset_path, "two", "--backend", "ray", "--devices", "2")
    assert two.exit_code == 0, two.output
    _assert_same_cache(tmp_path / "one" / "capture", tmp_path / "two" / "capture")
    assert (tmp_path / "one" / "heads.json").read_bytes() == (tmp_path / "two" / "heads.json").read_bytes()


def test_cli_refuses_a_backend_without_replicas(dataset_path, tmp_path):
    r = _discover(tmp_path, dataset_path, "x", "--backend", "ray")
    assert r.exit_code == 1 and "give --devices N with N >= 2" in r.output
    r = _discover(tmp_path, dataset_path, "y", "--backend", "nope", "--devices", "2")
    assert r.exit_code == 1 and "unknown capture backend 'nope'" in r.output
    assert not (tmp_path / "y" / "capture").exists()
