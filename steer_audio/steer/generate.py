"""Steered greedy generation: the steering intervention applied at the final prompt position t and at every
new position while decoding, with the KV cache (one decode step per token), batched with left padding.

The decode loop is this module's own, one nnsight trace per forward (the prefix, then one per new token):
each trace applies a `Steering`'s residual edits to the positions it computes and reads the next-token
logits, and a `Steering` picks the next token from them (greedy argmax, or a contrast of the audio rows with
the negative rows decoded in parallel, each row with its own KV cache). A loop of traces rather than one
`generate` trace with `tracer.iter[:]`, because the contrastive methods need the logits of *two* parallel
decodes at every step to choose one token for both, which HF's `generate` cannot do; one loop then serves
every method alike. `use_cache=False` recomputes the whole sequence every step (a reference for tests).

The primitives (what "steer at every new position" means for each method family):
  LayerAdd      h^L += alpha * v(x) at the last decoder layer's output           (head-guided, single-layer)
  HeadAdd       o_proj input of layer l += alpha * dz^{l,h} in head h's slice     (head-level, Eqs. 7-9)
  AvsSchedule   every layer: h' = h + alpha s_l v_l(x), renormalised to ||h||    (avs)
  LogitContrast (1 + alpha) logit(x) - alpha logit(x0), or log p(x) - alpha log p(x0), over the vocabulary
                (aad, contrastive-options), the negative rows decoded in parallel
`apply(ev, cols)` edits the positions `cols` of the forward being traced; it is called inside a trace, so
the same objects steer a trace the user opens."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch

from ..capture.trace import Envoys, envoys, last_position
from ..errors import SteerAudioError
from .avs import steer_residual

#: the model inputs that have one column per sequence position (left-padded)
SEQ_KEYS = ("input_ids", "inputs_embeds", "attention_mask", "position_ids")


class Steering(Protocol):
    """What the decode loop needs from a method: edits inside each trace and the choice of the next token."""

    #: the negative rows (x0) are decoded in parallel: inputs carry 2N rows, audio rows first
    needs_negative: ClassVar[bool]

    def apply(self, ev: Envoys, cols: slice) -> None:
        """Edit the forward being traced at sequence positions `cols` (inside an nnsight trace)."""
        ...

    def choose(self, logits: torch.Tensor) -> torch.Tensor:
        """Next token per audio row [N] from the last position's logits of every row [R, V] (float32)."""
        ...


@dataclass(frozen=True)
class Greedy:
    """No intervention: argmax of the audio rows' logits."""

    needs_negative: ClassVar[bool] = False

    def apply(self, ev: Envoys, cols: slice) -> None:
        return None

    def choose(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(-1)


@dataclass(frozen=True)
class LayerAdd(Greedy):
    """alpha * v(x) added to the last decoder layer's output (before the final norm) at every steered
    position; v: [N, d], one vector per row (the example's own audio-minus-negative direction at t)."""

    v: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    alpha: float = 0.0

    def apply(self, ev: Envoys, cols: slice) -> None:
        if self.alpha == 0:
            return
        y = ev.layers[len(ev.layers) - 1].output
        y[:, cols] += (self.alpha * self.v.float()).to(y.device, y.dtype)[:, None, :]


@dataclass(frozen=True)
class HeadAdd(Greedy):
    """alpha * dz^{l,h} added to head h's slice of o_proj's input in each layer l (= alpha * W_O[:, h] dz
    after the attention sublayer); deltas: {layer: [N, H * dh]} from `forward.head_delta`."""

    deltas: dict[int, torch.Tensor] = field(default_factory=dict)
    alpha: float = 0.0

    def apply(self, ev: Envoys, cols: slice) -> None:
        if self.alpha == 0:
            return
        for layer in sorted(self.deltas):
            x = ev.o_proj[layer].input
            x[:, cols] += (self.alpha * self.deltas[layer].float()).to(x.device, x.dtype)[:, None, :]


@dataclass(frozen=True)
class AvsSchedule(Greedy):
    """AVS at every steered position of every layer: h' = h + alpha s_l v_l(x), rescaled to ||h||
    (steer/avs.py); v: [N, L, d], schedule: [L]."""

    v: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    schedule: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    alpha: float = 0.0

    def apply(self, ev: Envoys, cols: slice) -> None:
        if self.alpha == 0:
            return
        for layer, s in enumerate(self.schedule.tolist()):
            y = ev.layers[layer].output
            add = (self.alpha * float(s) * self.v[:, layer].float()).to(y.device)[:, None, :]
            y[:, cols] = steer_residual(y[:, cols], add)


#: next-token contrasts of the audio rows' logits `a` with the negative rows' `n` [N, V] (float32)
CONTRASTS = {
    "aad": lambda a, n, alpha: (1 + alpha) * a - alpha * n,
    "contrastive-options": lambda a, n, alpha: a.log_softmax(-1) - alpha * n.log_softmax(-1),
}


@dataclass(frozen=True)
class LogitContrast(Greedy):
    """A logits processor over two parallel decodes: the audio rows and the negative rows (x0), each with its
    own KV cache, both fed the token chosen from the contrast (`CONTRASTS`)."""

    kind: str = "aad"
    alpha: float = 0.0
    needs_negative: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.kind not in CONTRASTS:
            raise SteerAudioError(f"unknown contrast {self.kind!r}: use {', '.join(CONTRASTS)}")

    def choose(self, logits: torch.Tensor) -> torch.Tensor:
        n = logits.shape[0] // 2
        a = logits[:n]
        if self.alpha == 0:
            return a.argmax(-1)
        return CONTRASTS[self.kind](a, logits[n:], self.alpha).argmax(-1)


@dataclass
class Generation:
    """Greedy output of N rows: tokens [N, T] (pad after a row's end-of-sequence token), per-row lengths up to
    and including the end token, and whether the row ended (else it hit max_new_tokens)."""

    tokens: torch.Tensor
    lengths: list[int]
    finished: list[bool]

    def texts(self, tokenizer: Any) -> list[str]:
        return [
            tokenizer.decode(self.tokens[i, :n].tolist(), skip_special_tokens=True)
            for i, n in enumerate(self.lengths)
        ]


def _embed(lm: Any, ids: torch.Tensor) -> torch.Tensor:
    return lm._module.get_input_embeddings()(ids)


def generate(
    lm: Any,
    ev: Envoys,
    inputs: dict[str, torch.Tensor],
    steering: Steering | None = None,
    max_new_tokens: int = 32,
    eos_ids: list[int] | tuple[int, ...] = (),
    pad_id: int = 0,
    use_cache: bool = True,
) -> Generation:
    """Greedy decoding of the rows of `inputs` (left-padded model inputs with explicit position ids; 2N rows,
    audio then negative, when `steering.needs_negative`), the steering applied at t and at each new position.

    With the cache, the prefix is one forward and every new token one decode step on the cached keys and
    values; without it, every step reruns the whole sequence and steers every position from t on."""
    st: Steering = steering or Greedy()
    if max_new_tokens < 1:
        raise SteerAudioError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    rows = int(inputs["attention_mask"].shape[0])
    n = rows // 2 if st.needs_negative else rows
    if st.needs_negative and rows % 2:
        raise SteerAudioError(f"a contrastive decode needs audio and negative rows, got {rows} rows")
    dev = inputs["attention_mask"].device
    eos = torch.tensor(sorted(set(eos_ids)), dtype=torch.long, device=dev)
    mask = inputs["attention_mask"]
    pos = inputs["position_ids"][:, -1:]
    t_col = int(mask.shape[1]) - 1
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    out: list[torch.Tensor] = []
    lengths = [0] * n
    kv: Any = None
    step_in: dict[str, torch.Tensor] = dict(inputs)
    for step in range(max_new_tokens):
        cols = slice(-1, None) if use_cache or step == 0 else slice(t_col, None)
        kw: dict[str, Any] = {"use_cache": use_cache}
        if kv is not None:
            kw["cache"] = kv
        with lm.trace(**step_in, **kw):
            st.apply(ev, cols)
            # the lm_head needs only the last position: skip the full-vocabulary logits of the others
            ev.final_norm.output = last_position(ev.final_norm.output)
            logits = ev.lm_head.output[:, -1].save()
            if use_cache and kv is None:
                kv = lm.output.cache.save()
        nxt = st.choose(logits.float()).to(dev)
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        out.append(nxt)
        for i in (~done).nonzero().flatten().tolist():
            lengths[i] = step + 1
        done = done | torch.isin(nxt, eos)
        if bool(done.all()) or step + 1 == max_new_tokens:
            break
        fed = torch.cat([nxt, nxt]) if st.needs_negative else nxt
        mask = torch.cat([mask, torch.ones(rows, 1, dtype=mask.dtype, device=dev)], 1)
        pos = pos + 1
        if use_cache:
            step_in = {"input_ids": fed[:, None], "attention_mask": mask, "position_ids": pos}
        else:
            step_in = _extend(lm, step_in, fed, mask, pos)
    tokens = torch.stack(out, 1).cpu()
    finished = [bool(torch.isin(tokens[i, : lengths[i]], eos.cpu()).any()) for i in range(n)]
    return Generation(tokens, lengths, finished)


def _extend(
    lm: Any, inputs: dict[str, torch.Tensor], fed: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The whole sequence plus one token (the uncached reference path)."""
    new = dict(inputs)
    new["attention_mask"] = mask
    new["position_ids"] = torch.cat([inputs["position_ids"], pos], 1)
    new["input_ids"] = torch.cat([inputs["input_ids"], fed[:, None]], 1)
    if "inputs_embeds" in inputs:
        e = _embed(lm, fed[:, None]).to(inputs["inputs_embeds"].dtype)
        new["inputs_embeds"] = torch.cat([inputs["inputs_embeds"], e], 1)
    return new


def eos_ids(m: Any) -> list[int]:
    """End-of-sequence tokens of a loaded model: its generation config's (one id or several), else the
    tokenizer's."""
    gc = getattr(m.lm._module, "generation_config", None)
    ids = getattr(gc, "eos_token_id", None) if gc is not None else None
    if ids is None:
        ids = m.processor.tokenizer.eos_token_id
    if ids is None:
        raise SteerAudioError(f"model {m.name!r} names no end-of-sequence token; generation cannot stop")
    return [int(i) for i in ids] if isinstance(ids, (list, tuple)) else [int(ids)]


def generate_texts(
    m: Any, inputs: dict[str, torch.Tensor], steering: Steering | None = None, max_new_tokens: int = 32
) -> list[str]:
    """Greedy answers of a loaded model (models/loaded.py) for model inputs already placed for it."""
    tok = m.processor.tokenizer
    eos = eos_ids(m)
    pad = int(tok.pad_token_id if tok.pad_token_id is not None else eos[0])
    ev = envoys(m.lm, m.arch, m.geom, m.name)
    return generate(m.lm, ev, inputs, steering, max_new_tokens, eos, pad).texts(tok)
