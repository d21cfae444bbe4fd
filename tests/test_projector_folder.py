"""`--model FOLDER` on a train-mini output folder resolves to its embedded model with that projector."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from steer_audio.errors import SteerAudioError
from steer_audio.io import sha256_file
from steer_audio.models import registry


def _projector(folder, metadata):
    folder.mkdir(parents=True, exist_ok=True)
    f = folder / registry.PROJECTOR_FILE
    save_file({"linear.weight": torch.arange(6.0).reshape(2, 3)}, str(f), metadata=metadata)
    return f


@pytest.mark.parametrize("model", ["mini", "qmini"])
def test_folder_names_model_and_weights(tmp_path, model):
    f = _projector(tmp_path / "run", {"model": model})
    spec = registry.resolve_spec(str(tmp_path / "run"))
    assert spec["name"] == model and spec["kind"] == registry.MODELS[model].kind
    assert spec["weights"] == str(f)
    assert spec["projector_sha256"] == sha256_file(f)


def test_folder_without_metadata_is_mini(tmp_path):
    _projector(tmp_path / "old", None)
    assert registry.resolve_spec(str(tmp_path / "old"))["name"] == "mini"


def test_folder_of_another_model_is_refused(tmp_path):
    _projector(tmp_path / "bad", {"model": "tiny"})
    with pytest.raises(SteerAudioError, match="not an embedded model"):
        registry.resolve_spec(str(tmp_path / "bad"))


def test_plain_folder_is_not_a_projector(tmp_path):
    assert registry.trained_projector_model(tmp_path) is None
