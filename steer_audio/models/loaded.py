"""A loaded model: nnsight wrapper + processor + architecture facts, ready for capture and steering.

`LoadedModel` is what the public `steer_audio.load_model` returns: `.nnsight` (the `AudioLM` wrapper),
`.processor`, `.arch` (the architecture row), `.geom` (head geometry), `.envoys()` (the nnsight envoys of
the layers, o_proj, final norm and lm_head the architecture table names) and `.trace(...)`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..data.prompts import PromptSpec, prompt_spec
from . import registry
from .arch import ArchSpec, Geometry, arch_for, geometry, resolve
from .wrapper import AudioLM


@dataclass
class LoadedModel:
    spec: dict[str, Any]
    lm: AudioLM
    processor: Any
    arch: ArchSpec
    geom: Geometry
    prompt: PromptSpec
    device: str
    dtype: torch.dtype
    remote: bool | str
    #: locally, feed audio as inputs_embeds from the clip-length encoder with repeated inputs encoded once
    #: (models/audio_embed.py; same numbers as the model's own forward). False = the model's own forward.
    fast_audio: bool = True
    #: captures compute the log-mel features on the batch's clip length instead of the whole window (the frames
    #: the clip-length encoder reads are the same; capture/inputs.py). Needs `uses_fast_audio`; else ignored.
    clip_features: bool = False
    _embedder: Any = field(default=None, repr=False)

    _envoys: Any = field(default=None, repr=False)

    @property
    def feature_device(self) -> str | None:
        """Where the log-mel features are computed: on the model's device, or on the host (None) for a remote
        run (the client sends them) and for the model's own forward (`--audio-encoder full-window`), whose inputs
        are then exactly what a remote client sends (a CUDA STFT differs from the host's by float rounding)."""
        return None if self.remote or not self.fast_audio else self.device

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def nnsight(self) -> AudioLM:
        """The nnsight wrapper (an `AudioLM`): open traces on it, read and edit its envoys."""
        return self.lm

    @property
    def module(self) -> torch.nn.Module:
        """The underlying transformers module (`*ForConditionalGeneration`)."""
        return self.lm._module  # type: ignore[no-any-return]

    def envoys(self) -> Any:
        """The envoys of the decoder layers, o_proj, attention `.source` ops, final norm and lm_head
        (`capture.trace.Envoys`), resolved once from the architecture table."""
        if self._envoys is None:
            from ..capture.trace import envoys

            self._envoys = envoys(self.lm, self.arch, self.geom, self.name)
        return self._envoys

    def inputs(self, *items: Any) -> dict[str, torch.Tensor]:
        """The model kwargs a trace of `items` (examples or (audio, text) pairs) gets: input_ids,
        attention_mask, position_ids, input_features, ... on the model's device (e.g. for HF `generate`)."""
        if self.lm.example_encoder is None:
            from ..errors import SteerAudioError

            raise SteerAudioError("load the model with steer_audio.load_model to encode examples")
        return self.lm.example_encoder(items)

    def trace(self, *inputs: Any, **kwargs: Any) -> Any:
        """`with model.trace(example): ...`: an nnsight trace of the wrapper (remote when the model is),
        on examples, (audio, text) pairs or model kwargs (see `wrapper.AudioLM`)."""
        kwargs.setdefault("remote", self.remote)
        return self.lm.trace(*inputs, **kwargs)

    @property
    def random_weights(self) -> bool:
        return registry.is_random(self.spec)

    @property
    def audio_window_s(self) -> float:
        """The audio window of the processor (clips are cut to it)."""
        fe = self.processor.feature_extractor
        return float(fe.n_samples) / float(fe.sampling_rate)

    @property
    def trace_device(self) -> str:
        """Where the trace's own input tensors live: the model's device, or the CPU for a remote server."""
        return "cpu" if self.remote else self.device

    def inputs_to_device(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Move model inputs to the model (floating ones to its dtype); remote inputs stay on the CPU."""
        if self.remote:
            return inputs
        return {
            k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device))
            for k, v in inputs.items()
        }

    @property
    def uses_fast_audio(self) -> bool:
        return bool(self.fast_audio and not self.remote and self.arch.encoder is not None)

    def model_inputs(
        self, inputs: dict[str, torch.Tensor], row_keys: list[str | None] | None = None
    ) -> dict[str, torch.Tensor]:
        """What a trace gets: inputs placed for the model and, on the fast audio path, the audio already
        encoded into `inputs_embeds` (`row_keys` name rows whose encoder output can be reused)."""
        from .audio_embed import AudioEmbedder, host_lengths

        if not self.uses_fast_audio:
            return self.inputs_to_device(inputs)
        if self._embedder is None:
            self._embedder = AudioEmbedder(self.lm._module, self.arch, self.name)
        lengths = host_lengths(inputs, self._embedder.audio_token_id)
        return self._embedder(self.inputs_to_device(inputs), row_keys, lengths)

    def final_norm_eps(self) -> float:
        mod = resolve(self.lm._module, self.arch.final_norm, self.name)
        return float(getattr(mod, self.arch.norm_eps_attr))

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "random_weights": self.random_weights,
            "arch": self.arch.key,
            "geometry": self.geom.__dict__,
            "device": self.device,
            "dtype": str(self.dtype).replace("torch.", ""),
            "remote": self.remote if isinstance(self.remote, str) else bool(self.remote),
            "prompt": self.prompt.to_json(),
            "audio_encoding": "clip-length encoder, repeated inputs once (models/audio_embed.py)"
            if self.uses_fast_audio
            else "the model's own forward",
        }


#: how audio reaches the decoder: "clip-length" (models/audio_embed.py: the encoder on each clip's own length,
#: repeated inputs once; the same numbers) or "full-window" (the model's own forward on the padded window, what
#: a remote NDIF server runs: use it to compare a local run bit for bit with a remote one)
AUDIO_ENCODERS = ("clip-length", "full-window")


def check_audio_encoder(value: str) -> str:
    from ..errors import SteerAudioError

    if value not in AUDIO_ENCODERS:
        raise SteerAudioError(f"--audio-encoder must be {' or '.join(AUDIO_ENCODERS)}, got {value!r}")
    return value


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load(
    name: str,
    device: str | None = None,
    dtype: str | None = None,
    remote: bool | str = False,
    revision: str | None = None,
    scoring: str | None = None,
    audio_encoder: str = "clip-length",
    **extra: Any,
) -> LoadedModel:
    """Load a model by registry name, hub id or folder; `audio_encoder` (AUDIO_ENCODERS) says how audio is
    encoded locally (a remote run always sends the plain inputs)."""
    fast_audio = check_audio_encoder(audio_encoder) == "clip-length"
    spec = registry.resolve_spec(name, revision=revision, **extra)
    device = device or default_device()
    tdtype = (
        getattr(torch, dtype) if dtype else (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    )
    processor = registry.load_processor(spec)
    pad = processor.tokenizer.pad_token_id or 0
    if remote:
        lm = AudioLM(spec=spec, pad_token_id=pad)  # meta skeleton; the server holds the weights
    else:
        module = registry.build_module(spec, dtype=tdtype, device=device)
        lm = AudioLM(module, spec=spec, pad_token_id=pad)
    config = lm._module.config
    arch = arch_for(config, spec["name"])
    return LoadedModel(
        spec=spec,
        lm=lm,
        processor=processor,
        arch=arch,
        geom=geometry(config, arch),
        prompt=prompt_spec(scoring or spec.get("scoring", "letters")),
        device=device,
        dtype=tdtype,
        remote=remote,
        fast_audio=fast_audio,
    )
