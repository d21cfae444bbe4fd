"""The nnsight wrapper's remote identity: the key is the spec; a rebuilt wrapper pads like the client."""

from __future__ import annotations

import json

from steer_audio.models.wrapper import AudioLM


def test_rebuilt_wrapper_resolves_the_pad_id_from_the_spec(tiny):
    key = tiny.lm.to_model_key()
    assert json.loads(key.split(":", 1)[1]) == tiny.spec
    rebuilt = AudioLM.from_model_key(key, dispatch=False)
    assert rebuilt.pad_token_id == tiny.processor.tokenizer.pad_token_id == tiny.lm.pad_token_id
