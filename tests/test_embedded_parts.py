"""The assembly code shared by the embedded models (models/mini/parts.py) on small made-up files: no wheel,
no cache needed."""

from __future__ import annotations

import hashlib

import pytest

from steer_audio.models.qmini import assemble as qa


def _chunks(tmp_path):
    paths = []
    for i, data in enumerate((b"GGUF" + bytes(range(200)), b"\x00" * 1000, b"tail")):
        p = tmp_path / f"part{i:02d}.bin"
        p.write_bytes(data)
        paths.append(p)
    return paths, b"".join(p.read_bytes() for p in paths)


def test_assembled_gguf_lands_whole_only_when_its_sha256_is_the_pinned_one(tmp_path, monkeypatch):
    chunks, whole = _chunks(tmp_path)
    dest = tmp_path / "out" / "model.gguf"
    with pytest.raises(qa.QminiSetupError, match="!= pinned"):
        qa.assemble_gguf(dest, chunks)  # the real pin: these bytes are not Qwen's GGUF
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # no file, no temporary left behind
    monkeypatch.setattr(qa, "QWEN_GGUF_SHA256", hashlib.sha256(whole).hexdigest())
    assert qa.assemble_gguf(dest, chunks) == dest
    assert dest.read_bytes() == whole and list(dest.parent.iterdir()) == [dest]


def test_both_embedded_models_share_one_cache_layout_and_window(tmp_path, monkeypatch):
    from steer_audio.models.mini import assemble as ma

    monkeypatch.setenv("STEER_AUDIO_CACHE", str(tmp_path))
    assert (ma.default_cache_dir(), qa.default_cache_dir()) == (tmp_path / "mini", tmp_path / "qmini")
    for name in ("CACHE_FORMAT", "MANIFEST", "TOKENIZER_DIR", "WINDOW_S", "SAMPLING_RATE", "AUDIO_TOKEN"):
        assert getattr(ma, name) == getattr(qa, name), name
    for mod, err in ((ma, ma.MiniSetupError), (qa, qa.QminiSetupError)):
        assert not mod.is_set_up()
        with pytest.raises(err, match="is not set up"):
            mod.load_tokenizer()
