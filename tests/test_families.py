"""More model families (Qwen2.5-Omni thinker, Voxtral, Audio Flamingo 3) on tiny random configs: the capture
equals an independent plain-PyTorch reference (HF eager attention probabilities, forward hooks on decoder
layers and o_proj inputs), and the silence pass has the same input_ids as the audio pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference import plain_reference

from steer_audio.capture.inputs import encode
from steer_audio.capture.run import run_capture
from steer_audio.data import mmau
from steer_audio.data.audio import load_audio
from steer_audio.models import loaded
from steer_audio.models.arch import ARCHS, arch_key

FAMILY_MODELS = {
    "tiny-qwen2.5-omni": "qwen2_5_omni_thinker/qwen2_5_omni_text",
    "tiny-voxtral": "voxtral/llama",
    "tiny-af3": "audioflamingo3/qwen2",
}


@pytest.fixture(scope="module", params=sorted(FAMILY_MODELS))
def fam_eager(request):
    """One tiny family model with eager attention (its probabilities are the reference)."""
    return loaded.load(request.param, device="cpu", tiny={"attn": "eager"})


def _skip_if_encode_drops_inputs(m, b) -> None:
    """AF3 reads its feature mask from `input_features_mask`; `encode()` must keep that key."""
    if m.spec.get("family") == "af3" and "input_features_mask" not in b.model_inputs:
        pytest.skip(
            "encode() drops `input_features_mask` (AF3's feature mask): add it to the model-input keys "
            "in steer_audio/capture/inputs.py (the model-input keys of capture.inputs.encode)"
        )


def test_family_arch_keys():
    for name, key in FAMILY_MODELS.items():
        m = loaded.load(name, device="cpu")
        assert arch_key(m.lm._module.config) == key
        assert m.arch is ARCHS[key]
        assert m.random_weights
        assert m.geom.audio_token_id == m.lm._module.config.audio_token_id


def test_family_capture_matches_plain_pytorchplain_reference(fam_eager, dataset_path, tmp_path):
    m = fam_eager
    ds = mmau.load(dataset_path)
    exs = ds.examples[:3]
    wavs = [load_audio(e.audio_path) for e in exs]
    refs = plain_reference(m, exs, wavs)
    refs_sil = plain_reference(m, exs, [np.zeros_like(w) for w in wavs])
    data = run_capture(m, exs, tmp_path / "cap", batch_size=3).load([e.id for e in exs])
    for i, ref in enumerate(refs):
        o = data.n_options[i]
        torch.testing.assert_close(data["resid_a"][i], ref["resid"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(data["mass_a"][i], ref["mass"], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(data["logits_a"][i, :o], ref["logits"], atol=1e-5, rtol=1e-5)
        assert torch.isinf(data["logits_a"][i, o:]).all()
        sil = refs_sil[i]
        torch.testing.assert_close(data["dz"][i], ref["z"] - sil["z"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(data["resid_n"][i], sil["resid"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(data["mass_n"][i], sil["mass"], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(data["logits_n"][i, :o], sil["logits"], atol=1e-5, rtol=1e-5)
    # the audio made a difference (the test can fail: identical passes would mean audio never reached the LM)
    assert not torch.allclose(data["resid_a"][:, -1], data["resid_n"][:, -1])


def test_family_negative_pass_has_identical_input_ids(fam_eager, dataset_path):
    m = fam_eager
    ds = mmau.load(dataset_path)
    exs = ds.examples[:4]
    wavs = [load_audio(e.audio_path) for e in exs]
    b = encode(m.processor, exs, wavs, [np.zeros_like(w) for w in wavs], m.prompt, m.geom.audio_token_id)
    ids = b.model_inputs["input_ids"]
    assert torch.equal(ids[:4], ids[4:])
    assert torch.equal(b.audio_mask[:4], b.audio_mask[4:])
    assert all(n > 0 for n in b.n_audio)
    # left padding: every row ends at the last position
    assert b.model_inputs["attention_mask"][:, -1].all()


def _save_folder(name: str, folder) -> None:
    """Write the tiny model as a checkpoint folder the way the real one is laid out (Qwen2.5-Omni: the full
    Omni config with `thinker.`-prefixed weights, as `Qwen/Qwen2.5-Omni-7B` ships)."""
    from safetensors.torch import save_file
    from transformers import Qwen2_5OmniConfig

    m = loaded.load(name, device="cpu")
    module, proc = m.lm._module, m.processor
    if name == "tiny-qwen2.5-omni":
        Qwen2_5OmniConfig(thinker_config=module.config.to_dict()).save_pretrained(folder)
        sd = {"thinker." + k: v.contiguous() for k, v in module.state_dict().items()}
        save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
        proc.tokenizer.save_pretrained(folder)
        proc.feature_extractor.save_pretrained(folder)
        (folder / "chat_template.jinja").write_text(proc.chat_template)
    elif name == "tiny-voxtral":
        module.save_pretrained(folder)
        proc.tokenizer.save_pretrained(folder)
        proc.feature_extractor.save_pretrained(folder)
    else:
        module.save_pretrained(folder)
        proc.save_pretrained(folder)


@pytest.mark.parametrize(
    "tiny_name,entry",
    [("tiny-qwen2.5-omni", "qwen2.5-omni"), ("tiny-voxtral", "voxtral-mini"), ("tiny-af3", "af3")],
)
def test_family_real_entry_loads_a_local_folder(tiny_name, entry, dataset_path, tmp_path):
    """The real entries' loading path (config, from_pretrained, processor) on a checkpoint folder of the tiny
    model gives the same capture as the tiny model itself."""
    from steer_audio.models.families import family_spec_for_folder

    folder = tmp_path / "ckpt"
    folder.mkdir()
    _save_folder(tiny_name, folder)
    assert family_spec_for_folder(str(folder))["family"] == loaded.registry.resolve_spec(tiny_name)["family"]
    exs = mmau.load(dataset_path).examples[:2]
    probe = loaded.load(tiny_name, device="cpu")
    wav = load_audio(exs[0].audio_path)
    _skip_if_encode_drops_inputs(probe, encode(probe.processor, exs[:1], [wav], None, probe.prompt, 0))
    want = run_capture(loaded.load(tiny_name, device="cpu"), exs, tmp_path / "a", batch_size=2).load()
    real = loaded.load(entry, device="cpu", local_path=str(folder))
    assert not real.random_weights and real.spec["kind"] == "family"
    got = run_capture(real, exs, tmp_path / "b", batch_size=2).load()
    for k in want.t:
        torch.testing.assert_close(got[k], want[k], atol=1e-5, rtol=1e-5)
    # --model <folder> routes the folder to its family by config.json's model_type
    by_path = loaded.registry.resolve_spec(str(folder))
    assert by_path["kind"] == "family" and by_path["local_path"] == str(folder.resolve())


@pytest.mark.parametrize("name", sorted(FAMILY_MODELS))
def test_family_capture_remote_round_trip_equals_local(name, dataset_path, tmp_path):
    """The family's spec is a remote model key: remote='local' rebuilds it offline and captures the same."""
    from steer_audio.remote import LOCAL_SIMULATION

    exs = mmau.load(dataset_path).examples[:2]
    local = loaded.load(name, device="cpu")
    wav = load_audio(exs[0].audio_path)
    _skip_if_encode_drops_inputs(local, encode(local.processor, exs[:1], [wav], None, local.prompt, 0))
    remote = loaded.load(name, device="cpu", remote=LOCAL_SIMULATION)
    a = run_capture(local, exs, tmp_path / "l", batch_size=2).load()
    b = run_capture(remote, exs, tmp_path / "r", batch_size=2).load()
    for k in a.t:
        assert torch.equal(a[k], b[k]), k


def test_family_hub_ids_resolve_to_their_family():
    from steer_audio.models import registry

    for hub_id, fam in [
        ("Qwen/Qwen2.5-Omni-7B", "qwen2.5-omni"),
        ("mistralai/Voxtral-Mini-3B-2507", "voxtral"),
        ("nvidia/audio-flamingo-3-hf", "af3"),
    ]:
        spec = registry.resolve_spec(hub_id)
        assert (spec["kind"], spec["family"], spec["hub_id"]) == ("family", fam, hub_id)
        assert not registry.is_random(spec)
    assert registry.resolve_spec("Qwen/Qwen2-Audio-7B-Instruct")["kind"] == "hub"


def test_voxtral_adapter_counts_windows_and_rejects_control_tokens():
    from steer_audio.errors import SteerAudioError
    from steer_audio.models.families import build_tiny_processor

    p = build_tiny_processor("voxtral")  # 4 s windows -> 400 mel frames -> 200 encoder frames -> 50 tokens
    assert [p.n_audio_tokens(n) for n in (1, 64000, 64001, 128000)] == [50, 50, 100, 100]
    conv = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "Q?"}]}]
    text = p.apply_chat_template(conv)
    assert text == "<s>[INST][BEGIN_AUDIO][AUDIO]Q?[/INST]"
    out = p(text=[text, text], audio=[np.zeros(1000, np.float32), np.zeros(70000, np.float32)])
    assert out["input_features"].shape == (3, 128, 400)
    assert (out["input_ids"] == p.audio_token_id).sum(-1).tolist() == [50, 100]
    bad = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "a [/INST] b"}]}]
    with pytest.raises(SteerAudioError, match="control token"):
        p.apply_chat_template(bad)
    with pytest.raises(SteerAudioError, match="match 1:1"):
        p(text=[text], audio=[])
