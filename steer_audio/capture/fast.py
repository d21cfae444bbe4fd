"""Opt-in capture levers (issue 18), each switchable on its own so a benchmark can say which gave what.

    from steer_audio.capture import fast
    with fast.install(model, fast.Levers(no_sync=True, liger=True)):
        run_capture(model, examples, out_dir)

`install` changes one loaded model in place and `restore()` (or leaving the `with`) puts every change back.
The nnsight envoys stay valid: a module body is swapped inside nnsight's own controller (`_set_body`), never by
replacing `forward`, so every read and write of a trace still sees the module.

* `features` ("device" = today's default, or "host"): where Whisper's log-mel STFT runs (transformers' torch
  path, `device=`). "host" is what a machine without a GPU does; the two agree to float rounding.
  "launch": the preparing thread only pads the waveforms (the feature extractor's log-mel step passes them
  through); the launching thread computes the log-mel on the device as the batch's first kernels (`log_mel`,
  Whisper's torch STFT op for op): no read-back of the features and no second copy to the device, and the
  preparing thread, which shares the GIL with the launching one, does a fraction of the work. The same ops on
  the same device as "device": bit-identical.
* `no_sync`: the host never waits for the device while it launches a batch, so it launches batch k+1 while the
  device still computes batch k. Every copy to the device is `non_blocking` (from pageable memory the driver
  stages the bytes at once, with no device synchronisation); the decoder's and the encoder's attention masks
  are built on the host by transformers' own mask functions, from host tensors (the device path reads the
  padding mask back to decide whether it may skip the mask: `.all()` on a device tensor); the feature STFT of
  the preparing thread runs on a side CUDA stream, so its read-back waits for its own kernels only. Same
  masks, same kernels: bit-identical outputs.
* `liger`: liger-kernel's fused Triton RMSNorm, SwiGLU and RoPE in the decoder layers (CUDA only; the
  package needs triton). Fused kernels change the order of float operations: equal to bf16 rounding.
* `compile`: `torch.compile` (inductor, dynamic shapes) of the bodies nnsight never reads inside a trace
  (each decoder layer's two RMSNorms and its MLP, as pure functions of tensors: one compilation for every
  layer), fusing their elementwise work; the attention forward (read through `.source`) and the layer outputs
  stay eager. Equal to float rounding.
* `encoder_graph`: the clip-length audio encoder (Whisper tower + projector, outside every trace: nnsight never
  reads it) replayed from a CUDA graph per batch shape (rows x mel frames), recorded the second time a shape
  comes (a one-off shape runs eagerly), at most MAX_GRAPHS kept. The host then launches one graph instead of
  ~500 kernels per batch (the eager encoder was 69 ms of host time per H200 batch for ~35 ms of GPU work).
  The same kernels on the same shapes: bit-identical.
* `clip_features`: the preparing thread computes the log-mel features on the batch's clip length (padded to
  what the clip-length encoder reads, `models.audio_embed.clip_samples`) instead of the whole 30 s window: a
  third of the padding, STFT, read-back and copies for 10 s clips (`prepare_batch` was 232 ms of host time per
  H200 batch, in the thread that shares the GIL with the launching one). The same frames; bit-identical
  where the mel projection's matrix product rounds the same at the shorter width.
"""

from __future__ import annotations

import sys
import threading
import types
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import SteerAudioError
from ..models.audio_embed import dithers
from .levers import Levers, parse_levers

#: nnsight's per-module state attribute (nnsight.intervention.source.STATE): holds the body its controller runs
_NNSIGHT_STATE = "__nnsight__"

#: host tensors at least this large go to the device through pinned memory (`no_sync`)
PIN_BYTES = 1 << 20


class Installed:
    """The changes `install` made to one model; `restore()` undoes them (last change first)."""

    def __init__(self, levers: Levers) -> None:
        self.levers = levers
        self._undo: list[Callable[[], None]] = []
        #: how often a lever's fast path served a call (tests and benchmarks check the levers really act)
        self.hits: dict[str, int] = {}
        #: the encoder's graph cache (`encoder_graph`), for tests and benchmarks
        self.graphs: GraphCache | None = None

    def add(self, undo: Callable[[], None]) -> None:
        self._undo.append(undo)

    def hit(self, name: str) -> None:
        self.hits[name] = self.hits.get(name, 0) + 1

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()

    def __enter__(self) -> Installed:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.restore()


#: models with levers installed now (id -> how many installs): `resolve("auto", m)` leaves them as they are
_INSTALLED: dict[int, int] = {}


def install(m: Any, levers: Levers) -> Installed:
    """Turn `levers` on for the loaded model `m` (a local model; remote runs keep the plain path)."""
    if m.remote:
        raise SteerAudioError("capture levers apply to a local model, not a remote one")
    inst = Installed(levers)
    key = id(m)
    _INSTALLED[key] = _INSTALLED.get(key, 0) + 1

    def forget() -> None:
        _INSTALLED[key] -= 1
        if not _INSTALLED[key]:
            del _INSTALLED[key]

    inst.add(forget)
    try:
        if levers.features == "host":
            _features_on(m, inst, "cpu", None)
        if levers.no_sync:
            _no_sync(m, inst)
        if levers.liger:
            _liger(m, inst)
        if levers.compile:
            _compile(m, inst)
        if levers.encoder_graph:
            _encoder_graph(m, inst)
        if levers.features == "launch":
            _features_at_launch(m, inst)
        if levers.clip_features:
            if not m.uses_fast_audio:
                raise SteerAudioError("the clip_features lever needs the clip-length audio encoder")
            _set_attr(inst, m, "clip_features", True)
    except BaseException:
        inst.restore()
        raise
    return inst


def exact_levers(m: Any) -> Levers:
    """The bit-identical levers that apply to `m`: on a local CUDA model with the clip-length encoder, no_sync,
    encoder_graph, clip_features and (Whisper features without dither) features="launch"; else none."""
    if m.remote or not str(m.device).startswith("cuda") or not m.uses_fast_audio:
        return Levers()
    fe = getattr(m.processor, "feature_extractor", None)
    whisper = type(fe).__name__ == "WhisperFeatureExtractor" and not dithers(fe)
    return Levers(
        features="launch" if whisper else "device", no_sync=True, encoder_graph=True, clip_features=True
    )


def resolve(spec: str, m: Any) -> Levers:
    """`--capture-levers` for the model `m`: "auto" = `exact_levers(m)` (none if levers are installed on `m`
    already: a caller's own `install` is kept), "none" = no lever, or a comma list (`no_sync,liger`, with
    `features=host|launch|device`). Unknown names get one message."""
    lv = parse_levers(spec)
    if lv is None:
        return Levers() if id(m) in _INSTALLED else exact_levers(m)
    return lv


# -- helpers ------------------------------------------------------------------------------------------------


def _set_attr(inst: Installed, obj: Any, name: str, value: Any) -> None:
    """obj.name = value (an instance attribute), undone by deleting it or putting the old one back."""
    had = name in obj.__dict__
    old = obj.__dict__.get(name)
    setattr(obj, name, value)

    def undo() -> None:
        if had:
            setattr(obj, name, old)
        else:
            delattr(obj, name)

    inst.add(undo)


def _set_body(inst: Installed, module: torch.nn.Module, body: Callable[..., Any]) -> None:
    """Make `body(module, *args, **kwargs)` what `module(...)` runs, keeping nnsight's controller in front of
    it (nnsight reads and writes the module's input and output around the body)."""
    state = module.__dict__.get(_NNSIGHT_STATE)
    if state is None:
        _set_attr(inst, module, "forward", types.MethodType(body, module))
        return
    old = state.body
    state.body = body

    def undo() -> None:
        state.body = old

    inst.add(undo)


def _body(module: torch.nn.Module) -> Callable[..., Any]:
    """The function `module(...)` runs now (unbound: takes the module first)."""
    state = module.__dict__.get(_NNSIGHT_STATE)
    if state is not None:
        return state.body  # type: ignore[no-any-return]
    fwd = module.__dict__.get("forward")
    if fwd is None:
        return type(module).forward  # type: ignore[no-any-return]
    return lambda _m, *a, **k: fwd(*a, **k)


def decoder(m: Any) -> tuple[Any, list[Any]]:
    """The decoder model (the module whose `layers` are the architecture table's decoder layers) and its
    layers."""
    from ..models.arch import resolve

    layers: Any = resolve(m.lm._module, m.arch.decoder_layers, m.name)
    as_list = list(layers)
    for mod in m.lm._module.modules():
        if getattr(mod, "layers", None) is layers:
            return mod, as_list
    raise SteerAudioError(f"{m.name}: no module holds the decoder layers {m.arch.decoder_layers!r}")


# -- (a) where the log-mel features are computed -------------------------------------------------------------


def _features_on(m: Any, inst: Installed, device: str | None, stream: Any) -> None:
    """Wrap the feature extractor's torch STFT: run it on `device` (None: where asked), inside `stream`."""
    fe = m.processor.feature_extractor
    orig = fe._torch_extract_fbank_features

    target = device

    def extract(waveform: Any, device: str = "cpu") -> Any:
        dev = target or device
        if stream is not None and dev != "cpu":
            s = stream()
            with torch.cuda.stream(s):
                return orig(waveform, dev)
        return orig(waveform, dev)

    _set_attr(inst, fe, "_torch_extract_fbank_features", extract)


# -- (b) no host sync while a batch is launched -------------------------------------------------------------


def _no_sync(m: Any, inst: Installed) -> None:

    dec, _ = decoder(m)
    dec_mod = sys.modules[type(dec).__module__]
    dtype = m.dtype
    # device attention_mask -> (weak ref, the decoder mask transformers would build from it, built on the host)
    ready: dict[int, tuple[Any, Any]] = {}

    def move(v: torch.Tensor) -> torch.Tensor:
        return to_device_async(v, m.device, dtype if v.is_floating_point() else None)

    def to_device(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {k: move(v) for k, v in inputs.items()}
        am = inputs.get("attention_mask")
        if am is not None and am.ndim == 2 and not am.is_cuda:
            n, s = am.shape
            host = orig_causal(
                config=dec.config,
                inputs_embeds=torch.empty(n, s, 0, dtype=dtype),
                attention_mask=am,
                cache=None,
                position_ids=inputs.get("position_ids"),
            )
            dev = None if host is None else to_device_async(host, m.device)
            d = out["attention_mask"]
            ready.clear()  # one batch at a time: the previous batch's trace has run
            ready[id(d)] = (weakref.ref(d), dev)
        return out

    orig_causal = dec_mod.create_causal_mask

    def create_causal_mask(*args: Any, **kwargs: Any) -> Any:
        am = kwargs.get("attention_mask", args[2] if len(args) > 2 else None)
        cache = kwargs.get("cache", args[3] if len(args) > 3 else None)
        got = ready.get(id(am)) if am is not None else None
        if got is not None and got[0]() is am and (cache is None or cache.get_seq_length() == 0):
            inst.hit("decoder_mask")
            return got[1]
        return orig_causal(*args, **kwargs)

    _set_attr(inst, m, "inputs_to_device", to_device)
    _set_module_attr(inst, dec_mod, "create_causal_mask", create_causal_mask)
    if getattr(dec, "has_sliding_layers", False):
        raise SteerAudioError(f"{m.name}: no_sync does not build sliding-window masks on the host")

    if m.uses_fast_audio:
        emb = embedder(m)

        def encode(feats: Any, fmask: Any, n_mel: list[int] | None = None) -> list[torch.Tensor]:
            emb.encoded_rows += feats.shape[0]
            x, out_len = tower_host_mask(emb.tower, feats, fmask, n_mel)
            inst.hit("encoder_mask")
            x = emb.projector(x)
            return [x[i, : int(out_len[i])] for i in range(x.shape[0])]

        _set_attr(inst, emb, "encode", encode)

    if str(m.device).startswith("cuda"):
        local = threading.local()

        def side() -> Any:
            if not hasattr(local, "s"):
                local.s = torch.cuda.Stream(device=m.device)
            return local.s

        if inst.levers.features != "launch":  # "launch" computes no features in the preparing thread
            _features_on(m, inst, m.device if inst.levers.features == "device" else "cpu", side)


def embedder(m: Any) -> Any:
    """The model's clip-length audio embedder (models/audio_embed.py), made on first use."""
    from ..models.audio_embed import AudioEmbedder

    if m._embedder is None:
        m._embedder = AudioEmbedder(m.lm._module, m.arch, m.name)
    return m._embedder


def to_device_async(v: torch.Tensor, device: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`v.to(device, dtype)` without making the host wait for the device. A large pageable copy could wait
    once the driver's staging buffer is full, so it goes through pinned memory (torch's caching host allocator
    keeps the block until the copy has run)."""
    cuda = str(device).startswith("cuda")
    if cuda and not v.is_cuda and v.numel() * v.element_size() >= PIN_BYTES and not v.is_pinned():
        v = torch.empty(v.shape, dtype=v.dtype, pin_memory=True).copy_(v)
    return v.to(device, dtype, non_blocking=True) if dtype is not None else v.to(device, non_blocking=True)


def _set_module_attr(inst: Installed, mod: Any, name: str, value: Any) -> None:
    old = getattr(mod, name)
    setattr(mod, name, value)
    inst.add(lambda: setattr(mod, name, old))


def tower_host_mask(
    tower: Any, feats: torch.Tensor, fmask: torch.Tensor, n_mel: list[int] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """`models.audio_embed.tower_on_clip_length` with its key mask built on the host (the same modules, the
    same mask values) and moved without a sync."""
    from ..models.audio_embed import tower_body

    x, mask, out_len = tower_inputs(tower, feats, fmask, n_mel)
    return tower_body(tower, x, mask), out_len


def tower_inputs(
    tower: Any, feats: torch.Tensor, fmask: torch.Tensor, n_mel: list[int] | None
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """`models.audio_embed.encoder_inputs` placed without a sync (the host-built mask moved asynchronously)."""
    from ..models.audio_embed import encoder_inputs

    x, host, out_len = encoder_inputs(tower, feats, fmask, n_mel, no_sync=True)
    return x, None if host is None else to_device_async(host, x.device), out_len


# -- (c) liger-kernel's fused RMSNorm / SwiGLU / RoPE -------------------------------------------------------


def _liger(m: Any, inst: Installed) -> None:
    if not str(m.device).startswith("cuda"):
        raise SteerAudioError("the liger lever needs a CUDA device (Triton kernels)")
    try:
        from liger_kernel.transformers.rms_norm import LigerRMSNorm
        from liger_kernel.transformers.rope import liger_rotary_pos_emb
        from liger_kernel.transformers.swiglu import LigerSwiGLUMLP
    except ImportError as err:
        raise SteerAudioError(f"the liger lever needs liger-kernel (and triton): {err}") from err
    dec, layers = decoder(m)
    dec_mod = sys.modules[type(dec).__module__]
    for layer in layers:
        for norm in (layer.input_layernorm, layer.post_attention_layernorm):
            # the attributes LigerRMSNorm.forward reads (liger's own _patch_rms_norm_module, Llama casting)
            eps = getattr(norm, "variance_epsilon", None) or getattr(norm, "eps", None) or 1e-6
            for k, v in {
                "offset": 0.0,
                "casting_mode": "llama",
                "variance_epsilon": eps,
                "in_place": False,
                "row_mode": None,
                "impl": None,
                "mode": None,
            }.items():
                _set_attr(inst, norm, k, v)
            _set_body(inst, norm, LigerRMSNorm.forward)
        _set_body(inst, layer.mlp, LigerSwiGLUMLP.forward)
    if hasattr(dec_mod, "apply_rotary_pos_emb"):
        _set_module_attr(inst, dec_mod, "apply_rotary_pos_emb", liger_rotary_pos_emb)


# -- (d) torch.compile of the bodies nnsight does not read ---------------------------------------------------


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Qwen2RMSNorm.forward, op for op."""
    dtype = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)


def _swiglu_mlp(x: torch.Tensor, wg: torch.Tensor, wu: torch.Tensor, wd: torch.Tensor) -> torch.Tensor:
    """Qwen2MLP.forward with SiLU, op for op: down(silu(gate(x)) * up(x))."""
    f = torch.nn.functional
    return f.linear(f.silu(f.linear(x, wg)) * f.linear(x, wu), wd)


def _compile(m: Any, inst: Installed) -> None:
    """Compiled pure functions of tensors (no module in the graph, so one compilation serves every layer: a
    compiled module body would be guarded on each child's nnsight controller and recompiled per layer). The
    MLP's children (gate/up/down projections, activation) are then no longer visited by nnsight: a trace that
    reads them needs this lever off."""
    _, layers = decoder(m)
    norm = torch.compile(_rms_norm, dynamic=True)
    mlp = torch.compile(_swiglu_mlp, dynamic=True)

    def norm_body(mod: Any, x: torch.Tensor) -> torch.Tensor:
        return norm(x, mod.weight, float(mod.variance_epsilon))  # type: ignore[no-any-return]

    def mlp_body(mod: Any, x: torch.Tensor) -> torch.Tensor:
        return mlp(x, mod.gate_proj.weight, mod.up_proj.weight, mod.down_proj.weight)  # type: ignore[no-any-return]

    for layer in layers:
        for nm in (layer.input_layernorm, layer.post_attention_layernorm):
            if type(nm).__name__ != "Qwen2RMSNorm":
                raise SteerAudioError(f"the compile lever knows Qwen2RMSNorm, not {type(nm).__name__}")
            _set_body(inst, nm, norm_body)
        mp = layer.mlp
        act = getattr(getattr(mp, "config", None), "hidden_act", None)
        if (
            type(mp).__name__ != "Qwen2MLP"
            or act != "silu"
            or any(
                getattr(getattr(mp, k), "bias", None) is not None
                for k in ("gate_proj", "up_proj", "down_proj")
            )
        ):
            raise SteerAudioError(
                f"the compile lever knows Qwen2MLP with SiLU and no bias, not {type(mp).__name__}"
            )
        _set_body(inst, mp, mlp_body)


# -- (e) CUDA graphs of the audio encoder --------------------------------------------------------------------

#: encoder graphs kept per model (least recently used dropped first)
MAX_GRAPHS = 8


@dataclass
class Recorded:
    """One recorded graph: `replay()` runs it on its static inputs `x`, `mask` and writes its static `out`."""

    replay: Callable[[], Any]
    x: torch.Tensor
    mask: torch.Tensor | None
    out: torch.Tensor
    graph: Any = None


Recorder = Callable[[Callable[..., torch.Tensor], torch.Tensor, "torch.Tensor | None"], Recorded]


def record_cuda_graph(
    fn: Callable[..., torch.Tensor], x: torch.Tensor, mask: torch.Tensor | None
) -> Recorded:
    """`fn(x, mask)` recorded into a `torch.cuda.CUDAGraph` on the static inputs `x`, `mask` (warmed up first on
    a side stream, as the CUDA graph docs ask: cuBLAS and cuDNN set up their plans outside the recording)."""
    cur = torch.cuda.current_stream(x.device)
    s = torch.cuda.Stream(device=x.device)
    s.wait_stream(cur)
    with torch.cuda.stream(s):
        for _ in range(2):
            fn(x, mask)
    cur.wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    # thread_local: the preparing thread keeps launching its STFT on its own stream while this one records
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):
        out = fn(x, mask)
    return Recorded(graph.replay, x, mask, out, graph)


class GraphCache:
    """`fn(x, mask)` served from recorded graphs, one per input shape. A shape is recorded the second time it
    comes (the first call runs `fn` eagerly), so a run of one-off shapes pays no recording. A replay copies the
    inputs into the graph's static buffers, runs it and returns a copy of its static output (the next replay
    of that graph overwrites the buffer). `record` makes a `Recorded` (`record_cuda_graph` on a GPU)."""

    def __init__(
        self, fn: Callable[..., torch.Tensor], record: Recorder, max_graphs: int = MAX_GRAPHS
    ) -> None:
        self.fn, self.record, self.max_graphs = fn, record, max_graphs
        self.graphs: OrderedDict[tuple[Any, ...], Recorded] = OrderedDict()
        self.seen: set[tuple[Any, ...]] = set()
        self.recorded = 0
        self.replayed = 0

    @staticmethod
    def key(x: torch.Tensor, mask: torch.Tensor | None) -> tuple[Any, ...]:
        m = None if mask is None else (tuple(mask.shape), mask.dtype)
        return tuple(x.shape), x.dtype, m

    def __call__(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        k = self.key(x, mask)
        g = self.graphs.pop(k, None)
        if g is None:
            if k not in self.seen:
                self.seen.add(k)
                return self.fn(x, mask)
            while len(self.graphs) >= self.max_graphs:
                self.graphs.popitem(last=False)
            g = self.record(self.fn, x.clone(), None if mask is None else mask.clone())
            self.recorded += 1
        self.graphs[k] = g
        g.x.copy_(x, non_blocking=True)
        if mask is not None and g.mask is not None:
            g.mask.copy_(mask, non_blocking=True)
        g.replay()
        self.replayed += 1
        return g.out.clone()


def _encoder_graph(m: Any, inst: Installed) -> None:
    if not str(m.device).startswith("cuda"):
        raise SteerAudioError("the encoder_graph lever needs a CUDA device (CUDA graphs)")
    graph_encoder(m, inst, record_cuda_graph)


def graph_encoder(m: Any, inst: Installed, record: Recorder) -> None:
    """The embedder's encoder served by a `GraphCache` of `record`ed graphs (inputs placed without a sync)."""
    from ..models.audio_embed import tower_body

    if not m.uses_fast_audio:
        raise SteerAudioError("the encoder_graph lever needs the clip-length audio encoder (a local model)")
    emb = embedder(m)

    def run(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return emb.projector(tower_body(emb.tower, x, mask))  # type: ignore[no-any-return]

    cache = GraphCache(run, record)

    def encode(feats: Any, fmask: Any, n_mel: list[int] | None = None) -> list[torch.Tensor]:
        emb.encoded_rows += feats.shape[0]
        x, mask, out_len = tower_inputs(emb.tower, feats, fmask, n_mel)
        before = cache.replayed
        y = cache(x, mask)
        inst.hit("encoder_graph" if cache.replayed > before else "encoder_eager")
        return [y[i, : int(out_len[i])] for i in range(y.shape[0])]

    _set_attr(inst, emb, "encode", encode)
    inst.graphs = cache


# -- (f) the log-mel features computed by the launching thread, on the device ---------------------------------


def log_mel(fe: Any, waveform: torch.Tensor, filters: torch.Tensor | None = None) -> torch.Tensor:
    """`WhisperFeatureExtractor._torch_extract_fbank_features` (transformers 5.x) op for op on a [B, samples]
    float32 batch, on the batch's device and without its read-back to the host: [B, n_mels, frames] float32.
    `filters` is the extractor's mel filter bank already on that device (else it is copied there)."""
    dev = waveform.device
    window = torch.hann_window(fe.n_fft, device=dev)
    stft = torch.stft(waveform, fe.n_fft, fe.hop_length, window=window, return_complex=True)
    magnitudes = (stft[..., :-1].abs() ** 2).contiguous()
    if filters is None:
        filters = torch.from_numpy(fe.mel_filters).to(dev, torch.float32)
    mel_spec = filters.T @ magnitudes
    log_spec = torch.clamp(mel_spec, min=1e-10).log10()
    max_val = log_spec.max(dim=2, keepdim=True)[0].max(dim=1, keepdim=True)[0]
    log_spec = torch.maximum(log_spec, max_val - 8.0)
    return (log_spec + 4.0) / 4.0


def _features_at_launch(m: Any, inst: Installed) -> None:
    import numpy as np

    fe = m.processor.feature_extractor
    if type(fe).__name__ != "WhisperFeatureExtractor" or not m.uses_fast_audio:
        raise SteerAudioError("features='launch' needs Whisper features and the clip-length audio encoder")
    if dithers(fe):
        raise SteerAudioError("features='launch' computes no dither: the feature extractor dithers")
    filters = torch.from_numpy(fe.mel_filters).to(m.device, torch.float32)

    def passthrough(waveform: Any, device: str = "cpu") -> Any:
        # [B, samples]: the padded (and, where the extractor normalises, normalised) waveforms
        return np.ascontiguousarray(waveform, dtype=np.float32)

    prev = m.inputs_to_device

    def to_device(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        wav = inputs.get("input_features")
        if wav is None or wav.ndim != 2:  # log-mel features are [B, n_mels, frames]; waveforms [B, samples]
            return prev(inputs)  # type: ignore[no-any-return]
        out = prev({k: v for k, v in inputs.items() if k != "input_features"})
        feats = log_mel(fe, to_device_async(wav, m.device, torch.float32), filters)
        out["input_features"] = feats.to(m.dtype)
        inst.hit("features_at_launch")
        return out

    _set_attr(inst, fe, "_torch_extract_fbank_features", passthrough)
    _set_attr(inst, m, "inputs_to_device", to_device)
