"""The public API (re-exported by `steer_audio`): load a model, capture, find heads, score listening,
build steering objects. Each function is a stage of the data flow, from artifact to artifact:

    load_model(name)                        -> Model (nnsight wrapper, processor, architecture row)
    capture_examples(model, examples)       -> Capture (audio and negative pass at t, in memory or cached)
    find_heads(capture, k=20)               -> HeadScores (r [L, H] from a calibration capture, S_K)
    listening_score(capture, heads)         -> s(x) per example (Eq. 3)
    head_guided / single_layer / head_level / avs (capture, ..., alpha) -> Steering objects

The CLI (`steer-audio discover / evaluate`) runs the same stages on run directories.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .capture.cache import CaptureData, Readout
from .capture.prepare import prep_spec, prepare_batch
from .capture.run import all_candidate_ids, capture_order, run_capture, shard_info, shard_rows, trace_batch
from .capture.trace import last_position
from .config import RunConfig
from .data.audio import load_audio
from .data.mmau import Example
from .data.prompts import PromptSpec
from .discover.heads import HeadSet, correctness, point_biserial, predictions, select
from .discover.heads import listening_score as _score
from .errors import SteerAudioError
from .evaluate.protocol import split_real
from .io import HEAD_SCORES, HEADS, load_tensors, read_json, save_tensors, write_json
from .models import loaded
from .models.loaded import LoadedModel
from .models.wrapper import example_items
from .steer import cached
from .steer.avs import DEFAULT_BAND, avs_vectors, layer_schedule
from .steer.forward import head_delta
from .steering import AVSSteering, HeadSteering, ResidualSteering, Steering

#: the model object `load_model` returns
Model = LoadedModel


# -- models --------------------------------------------------------------------------------------------


def load_model(
    name: str = "tiny",
    *,
    device: str | None = None,
    dtype: str | None = None,
    remote: bool | str = False,
    revision: str | None = None,
    **extra: Any,
) -> Model:
    """Load a model by registry name (`tiny`, `mini`, `qwen2-audio`, `r1-aqa`, ...), Hugging Face id or
    local folder, with its processor and architecture row. `model.trace(example)` then opens an nnsight
    trace on an example (or a list of them, or an `(audio, text)` pair).

    `extra` goes to the registry (e.g. `tiny={"attn": "eager"}`, `weights=` for `mini`)."""
    m = loaded.load(name, device=device, dtype=dtype, remote=remote, revision=revision, **extra)
    m.lm.example_encoder = partial(encode_inputs, m)
    return m


def load_examples(path: str | Path, audio_root: str | Path | None = None) -> list[Example]:
    """The examples of an MMAU-format JSON file (or a local `datasets` copy); audio paths resolved against
    `audio_root` (default: the file's folder)."""
    from .data.mmau import load

    return list(load(Path(path), Path(audio_root) if audio_root else None).examples)


def make_example(
    audio: str | Path | np.ndarray,
    question: str,
    choices: Sequence[str],
    answer: str | None = None,
    *,
    id: str | None = None,
    domain: str = "?",
) -> Example:
    """An example from your own clip: a file path or a 16 kHz mono float array, a question, its options and
    (for calibration) the correct option's text."""
    choices = tuple(str(c).strip() for c in choices)
    correct = frozenset(i for i, c in enumerate(choices) if answer is not None and c == str(answer).strip())
    if answer is not None and not correct:
        raise SteerAudioError(f"answer {answer!r} is not one of the choices {list(choices)}")
    path = Path(audio) if isinstance(audio, (str, Path)) else None
    array = None if path is not None else np.asarray(audio, dtype=np.float32)
    if id is None and path is None:
        import zlib

        id = f"clip-{zlib.crc32(repr((question, choices, array.tobytes()[:4096])).encode()):08x}"  # type: ignore[union-attr]
    ex_id = id or path.stem  # type: ignore[union-attr]
    return Example(ex_id, question, choices, str(answer or ""), correct, domain, path, array)


def encode_inputs(m: Model, inputs: tuple[Any, ...]) -> dict[str, torch.Tensor]:
    """Model kwargs for the positional inputs of a trace: examples (rendered with the model's prompt), or
    `(audio, text)` pairs (the text as the user turn, after the audio). Plain inputs: the model's own
    forward encodes the audio."""
    from .capture.inputs import encode

    items = example_items(inputs)
    if not items:
        raise SteerAudioError("a trace needs at least one example or (audio, text) pair")
    if all(isinstance(x, Example) for x in items):
        exs, ps = list(items), m.prompt
    elif all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], str) for x in items):
        exs = [make_example(a, t, (), id=f"input{i}") for i, (a, t) in enumerate(items)]
        ps = PromptSpec(m.prompt.scoring, "{question}")
    else:
        raise SteerAudioError("trace inputs must all be Examples or all (audio, text) pairs")
    wavs = [load_audio(e.audio_path, e.audio_array, max_seconds=m.audio_window_s) for e in exs]
    b = encode(m.processor, exs, wavs, None, ps, m.geom.audio_token_id, m.feature_device)
    return m.inputs_to_device(b.model_inputs)


# -- capture -------------------------------------------------------------------------------------------


@dataclass
class Capture:
    """The two-pass capture of some examples, at the final prompt position t of each (capture/cache.py
    lists the tensors: resid_a/n [N, L, d], dz [N, L, H, dh], mass_a/n [N, L, H], logits_a/n [N, O]), and
    the readout (final norm + candidate lm_head rows) that scores options from a residual."""

    examples: list[Example]
    data: CaptureData
    readout: Readout
    negative: str
    #: examples whose audio could not be read: id -> reason
    missing: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.examples]

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.data[key]

    def subset(self, ids: Sequence[str]) -> Capture:
        by_id = {e.id: e for e in self.examples}
        return Capture([by_id[i] for i in ids], self.data.subset(list(ids)), self.readout, self.negative)

    def logits(self, steering: ResidualSteering | None = None) -> torch.Tensor:
        """Candidate-option logits [N, O] (padding -inf), unsteered or under a residual steering object,
        computed from the capture alone (final norm + candidate lm_head rows; no forward pass)."""
        if steering is None:
            return self.data["logits_a"].float()
        if not isinstance(steering, ResidualSteering):
            raise SteerAudioError(
                f"{type(steering).__name__} changes more than the last layer's output: score it with a "
                "forward pass (model.trace + steering.edit), not from the capture"
            )
        return cached.score(self.data, self.readout, steering.v.float(), [steering.alpha])[0]

    def predictions(self, steering: ResidualSteering | None = None) -> np.ndarray:
        return predictions(self.logits(steering))

    def accuracy(self, steering: ResidualSteering | None = None) -> float:
        if any(not e.correct for e in self.examples):
            raise SteerAudioError("accuracy needs labelled examples (an answer among the choices)")
        return float(correctness(self.predictions(steering), [e.correct for e in self.examples]).mean())


def capture_examples(
    model: Model,
    examples: Sequence[Example],
    negative: str = "silence",
    cache_dir: str | Path | None = None,
    *,
    batch_size: int = 8,
    seed: int = 0,
    strict: bool = False,
) -> Capture:
    """Run the audio pass x and the negative pass x⁰ (`silence`: matched-duration zeros; `noise`,
    `shuffle`, `drop`) of every example, one nnsight trace per batch, and keep what steering and head
    scores need at t. In memory by default; with `cache_dir`, cached on disk as safetensors shards and
    resumable (a rerun captures only what is not there; the CLI's run directories hold the same cache)."""
    examples = list(examples)
    if not examples:
        raise SteerAudioError("capture needs at least one example")
    dup = sorted({e.id for e in examples if [x.id for x in examples].count(e.id) > 1})
    if dup:
        raise SteerAudioError(f"example ids must be unique, repeated: {dup[:5]}")
    if batch_size < 1:
        raise SteerAudioError("batch_size must be at least 1")
    if cache_dir is not None:
        cache = run_capture(
            model,
            examples,
            Path(cache_dir),
            batch_size=batch_size,
            negative_kind=negative,
            strict=strict,
            seed=seed,
        )
        have = [e for e in examples if e.id in cache.index["examples"]]
        if not have:
            raise SteerAudioError(f"none of the examples could be captured: {cache.index['missing']}")
        missing = {k: v for k, v in cache.index["missing"].items() if k in {e.id for e in examples}}
        return Capture(have, cache.load([e.id for e in have]), cache.readout(), negative, missing)
    return _capture_in_memory(model, examples, negative, batch_size, seed, strict)


def _capture_in_memory(
    m: Model, examples: list[Example], negative: str, batch_size: int, seed: int, strict: bool
) -> Capture:
    spec = prep_spec(m, negative, strict, seed)
    ro_ids = all_candidate_ids(m, examples)
    ev = m.envoys()
    todo = capture_order(examples)
    shards: list[dict[str, torch.Tensor]] = []
    ids: list[str] = []
    n_options: list[int] = []
    missing: dict[str, str] = {}
    readout: Readout | None = None
    for i in range(0, len(todo), batch_size):
        b, miss = prepare_batch(m.processor, spec, todo[i : i + batch_size])
        missing |= {ex.id: why for ex, why in miss}
        if b is None:
            continue
        ro = torch.tensor(ro_ids) if readout is None else None
        out, b = _trace_pair(m, ev, b, ro)
        if readout is None:
            w, norm = out["readout_w"].float().cpu(), out["readout_norm"].float().cpu()
            readout = Readout(ro_ids, w, norm, m.final_norm_eps(), m.arch.norm_kind)
        shards.append(shard_rows({k: v.cpu() for k, v in out.items()}, b, m.dtype))
        ids += b.ids
        n_options += [int(x["n_options"]) for x in shard_info(b)]
    if readout is None:
        raise SteerAudioError(f"none of the examples could be captured: {missing}")
    data = CaptureData(ids, {k: torch.cat([s[k] for s in shards]) for k in shards[0]}, n_options)
    have = [e for e in examples if e.id in set(ids)]
    return Capture(have, data.subset([e.id for e in have]), readout, negative, missing)


def _trace_pair(m: Model, ev: Any, b: Any, ro: torch.Tensor | None) -> tuple[dict[str, torch.Tensor], Any]:
    """The capture trace of one prepared batch; the `drop` negative traces its no-audio rows separately."""
    if not isinstance(b, tuple):
        return trace_batch(m, ev, b, ro), b
    from dataclasses import replace

    out_a, out_n = trace_batch(m, ev, b[0], ro), trace_batch(m, ev, b[1], None)
    out = {k: torch.cat([v, out_n[k]]) if k in out_n else v for k, v in out_a.items()}
    cand = torch.cat([b[0].cand, b[1].cand])
    return out, replace(b[0], cand=cand, cand_valid=torch.cat([b[0].cand_valid, b[1].cand_valid]))


# -- heads -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadScores:
    """Head scores r_{l,h} (Eq. 2: point-biserial correlation of the audio attention mass with baseline
    correctness over a calibration capture) and the specialist set S_K they select."""

    r: torch.Tensor
    heads: HeadSet
    ranking: str = "abs"
    n_calib: int = 0
    calib_accuracy: float | None = None

    @property
    def k(self) -> int:
        return self.heads.k

    def top(self, k: int, ranking: str | None = None) -> HeadSet:
        """The top-k heads by |r| ("abs") or r ("signed")."""
        return select(self.r.double().numpy(), k, ranking or self.ranking)

    def save(self, folder: str | Path) -> Path:
        """head_scores.safetensors (r [L, H]) + heads.json (the specialists, as `steer-audio discover` writes)."""
        folder = Path(folder)
        save_tensors(folder / HEAD_SCORES, {"r": self.r.float()})
        doc = {
            "k": self.heads.k,
            "heads": self.heads.to_json(),
            "layer_weights": {str(k): v for k, v in self.heads.layer_weights().items()},
            "ranking": self.ranking,
            "n_calib": self.n_calib,
            "calib_accuracy": self.calib_accuracy,
        }
        write_json(folder / HEADS, doc)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> HeadScores:
        """Read `save`'s files, or a `steer-audio discover` run directory (same files)."""
        folder = Path(folder)
        r = load_tensors(folder / HEAD_SCORES)["r"].float()
        doc = read_json(folder / HEADS)
        rows = doc["heads"]
        hs = HeadSet(
            tuple((int(h["layer"]), int(h["index"])) for h in rows), tuple(float(h["r"]) for h in rows)
        )
        return cls(
            r, hs, str(doc.get("ranking", "abs")), int(doc.get("n_calib", 0)), doc.get("calib_accuracy")
        )


def find_heads(calib: Capture, k: int = 20, ranking: str = "abs") -> HeadScores:
    """Head scores and the top-k specialists from a labelled calibration capture alone. Items whose audio
    is replaced (listen-bench's silence twins and other ablations: `evaluate.protocol.is_ablated`) are left
    out, as in `steer-audio discover`."""
    real, _ = split_real(calib.examples)
    if not real:
        raise SteerAudioError("find_heads needs real-audio calibration examples (all are ablation twins)")
    if any(not e.correct for e in real):
        raise SteerAudioError("find_heads needs labelled examples (an answer among the choices)")
    sub = calib.subset([e.id for e in real]) if len(real) < len(calib) else calib
    c = correctness(predictions(sub.data["logits_a"]), [e.correct for e in real])
    r = point_biserial(sub.data["mass_a"].numpy(), c)
    hs = select(r, k, ranking)
    return HeadScores(torch.tensor(r, dtype=torch.float32), hs, ranking, len(real), float(c.mean()))


def listening_score(capture: Capture, heads: HeadScores | HeadSet, normalise: bool = True) -> np.ndarray:
    """s(x) = Σ_{(l,h) ∈ S_K} r_{l,h} a_{l,h}(x) for every captured example (Eq. 3; divided by Σ|r| when
    `normalise`)."""
    hs = heads.heads if isinstance(heads, HeadScores) else heads
    return _score(capture.data["mass_a"].numpy(), hs, normalise)


# -- steering --------------------------------------------------------------------------------------------


def _head_set(heads: HeadScores | HeadSet) -> HeadSet:
    return heads.heads if isinstance(heads, HeadScores) else heads


def head_guided(capture: Capture, heads: HeadScores | HeadSet, alpha: float = 1.0) -> ResidualSteering:
    """The paper's method (Eqs. 4-6): v(x) = Σ_{l ∈ L_S} w_l (h_t^l(x) − h_t^l(x⁰)), w_l = n_l / K, added
    α times to the last layer's output at t. One row per captured example."""
    hs = _head_set(heads)
    lw = hs.layer_weights()
    return ResidualSteering(
        alpha=float(alpha),
        method="head-guided",
        ids=tuple(capture.ids),
        info={"heads": hs.names(), "negative": capture.negative},
        v=cached.head_guided_direction(capture.data, hs),
        layers=tuple(lw),
        weights=tuple(lw.values()),
    )


def single_layer(capture: Capture, layer: int, alpha: float = 1.0) -> ResidualSteering:
    """v_l(x) = h_t^l(x) − h_t^l(x⁰) of one layer, added α times to the last layer's output at t."""
    n_layers = int(capture.data["resid_a"].shape[1])
    if not 0 <= layer < n_layers:
        raise SteerAudioError(f"layer {layer} is outside 0..{n_layers - 1}")
    return ResidualSteering(
        alpha=float(alpha),
        method="single-layer",
        ids=tuple(capture.ids),
        info={"negative": capture.negative},
        v=cached.single_layer_direction(capture.data, layer),
        layers=(layer,),
        weights=(1.0,),
    )


def head_level(capture: Capture, heads: HeadScores | HeadSet, alpha: float = 1.0) -> HeadSteering:
    """Head-level steering (Eqs. 7-9): α·Δz^{l,h}(x) in head h's slice of o_proj's input at t, for every
    head of the set."""
    hs = _head_set(heads)
    dz = capture.data["dz"]
    return HeadSteering(
        alpha=float(alpha),
        method="head-level",
        ids=tuple(capture.ids),
        info={"heads": hs.names(), "negative": capture.negative},
        deltas=head_delta(dz, list(hs.heads), int(dz.shape[1])),
        heads=tuple(hs.heads),
    )


def avs(
    capture: Capture,
    alpha: float = 1.0,
    band: tuple[float, float] = DEFAULT_BAND,
    inside: float = 1.0,
    outside: float = 0.25,
) -> AVSSteering:
    """Adaptive vector steering (steer/avs.py): every layer's residual at t moves by α s_l v_l(x) and is
    rescaled to its norm; s_l = `inside` in the band of depth, `outside` elsewhere."""
    v = avs_vectors(capture.data["resid_a"], capture.data["resid_n"])
    return AVSSteering(
        alpha=float(alpha),
        method="avs",
        ids=tuple(capture.ids),
        info={"band": list(band), "inside": inside, "outside": outside, "negative": capture.negative},
        v=v,
        schedule=layer_schedule(int(v.shape[1]), band, inside, outside),
    )


def option_logits(
    model: Model, examples: Sequence[Example], steering: Steering | None = None
) -> torch.Tensor:
    """Candidate-option logits [N, O] (padding -inf) of a real forward pass on `examples`, with `steering`
    edited into the trace (one row per example, or one row for all)."""
    from .capture.inputs import MAX_OPTIONS
    from .data.prompts import candidate_ids

    exs = list(examples)
    ev = model.envoys()
    with model.trace(exs):
        if steering is not None:
            steering.edit(ev)
        ev.final_norm.output = last_position(ev.final_norm.output)
        logits = ev.lm_head.output[:, -1].save()
    out = torch.full((len(exs), MAX_OPTIONS), float("-inf"))
    for i, e in enumerate(exs):
        c = candidate_ids(model.processor.tokenizer, e, model.prompt)
        out[i, : len(c)] = logits[i].float().cpu()[torch.tensor(c)]
    return out


def run(cfg: RunConfig, out: str | Path, stage: str = "evaluate") -> dict[str, Any]:
    """A whole `steer-audio discover` / `evaluate` run of `cfg` into the run directory `out`, cached and
    resumable exactly as the CLI's (the CLI and recipes build the same `RunConfig`); returns summary.json.

        sa.run(sa.RunConfig(model="mini", data="listen-bench", methods=["baseline", "head-guided"]), "runs/x")
    """
    from .pipeline import execute

    if stage not in ("discover", "evaluate"):
        raise SteerAudioError(f"stage {stage!r}: use 'discover' or 'evaluate'")
    return execute(stage, cfg, Path(out))
