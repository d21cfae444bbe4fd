"""The language-model pass on cached audio features: prompt ids (chat template, audio expanded), the
projector's output spliced into the audio positions, and the final-position logits (or only the rows of
``lm_head`` that the candidates need)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..data import prompts as P
from ..data.mmau import Example
from .config import TrainError
from .device import model_device

AUDIO_TOKEN = "<|AUDIO|>"


def bench_example(row: dict) -> Example:
    """A listen-bench row as the prompt code's Example (one prompt builder for bench, training and capture)."""
    choices = tuple(row["choices"])
    return Example(
        id=row["id"],
        question=row["question"],
        choices=choices,
        answer=row["answer"],
        correct=frozenset({choices.index(row["answer"])}),
        domain=row.get("task", ""),
        audio_path=Path(row["audio_id"]),
    )


class PromptCache:
    """Token ids of each row's prompt (chat template, audio expanded), and its choices' candidate tokens."""

    def __init__(self, processor: object, prompt: P.PromptSpec | None = None) -> None:
        self.proc = processor
        self.tok = processor.tokenizer  # type: ignore[attr-defined]
        self.prompt = prompt if prompt is not None else P.prompt_spec("first-token")
        self._ids: dict[tuple[str, int], list[int]] = {}
        self._cands: dict[tuple[str, ...], list[int]] = {}

    def text(self, row: dict) -> str:
        return P.render(self.proc, bench_example(row), self.prompt)

    def ids(self, row: dict, n_audio: int) -> list[int]:
        key = (row["id"], n_audio)
        if key not in self._ids:
            text = self.text(row).replace(AUDIO_TOKEN, AUDIO_TOKEN * n_audio)
            self._ids[key] = list(self.tok(text)["input_ids"])
        return self._ids[key]

    def choice_ids(self, row: dict) -> list[int]:
        key = tuple(row["choices"])
        if key not in self._cands:
            try:
                self._cands[key] = P.candidate_ids(self.tok, bench_example(row), self.prompt)
            except Exception as e:  # SteerAudioError: options share a first token
                raise TrainError(str(e)) from e
        return self._cands[key]


def last_hidden(model: object, ids: Sequence[Sequence[int]], feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Final-norm hidden state at the last position ([batch, d_model]) from token ids and cached
    audio-tower outputs."""
    m = model.model  # type: ignore[attr-defined]
    audio_id = model.config.audio_token_id  # type: ignore[attr-defined]
    dev = model_device(model)
    width = max(len(x) for x in ids)
    inp = torch.zeros((len(ids), width), dtype=torch.long)
    att = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        inp[i, width - len(x) :] = torch.tensor(x)
        att[i, width - len(x) :] = 1
    inp, att = inp.to(dev), att.to(dev)
    emb = m.language_model.get_input_embeddings()(inp)
    proj = m.multi_modal_projector(torch.cat(list(feats), 0).to(device=dev, dtype=emb.dtype))
    mask = (inp == audio_id).unsqueeze(-1)
    if int(mask.sum()) != proj.shape[0]:
        raise TrainError(f"{int(mask.sum())} audio tokens but {proj.shape[0]} audio features")
    emb = emb.masked_scatter(mask, proj)
    return m.language_model(inputs_embeds=emb, attention_mask=att, use_cache=False).last_hidden_state[:, -1]


def last_logits(model: object, ids: Sequence[Sequence[int]], feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Logits at the final position ([batch, vocab]) from token ids and cached audio-tower outputs."""
    return model.lm_head(last_hidden(model, ids, feats))  # type: ignore[attr-defined]


def candidate_logits(
    model: object, ids: Sequence[Sequence[int]], feats: Sequence[torch.Tensor], cands: torch.Tensor
) -> torch.Tensor:
    """Logits of each row's candidate tokens only ([batch, n_candidates]): the rows of ``lm_head`` that the
    choices loss reads, so the full vocabulary projection (and its backward) is skipped."""
    h = last_hidden(model, ids, feats)
    head = model.lm_head  # type: ignore[attr-defined]
    if getattr(head, "bias", None) is not None:
        raise TrainError("candidate_logits assumes an lm_head without bias")
    return torch.einsum("bd,bkd->bk", h, head.weight[cands.to(h.device)])


def model_last_logits(model: Any, **inputs: torch.Tensor) -> torch.Tensor:
    """The real model's next-token logits at the final position ([batch, vocab]), from processor inputs."""
    out = model.model(**inputs)
    return model.lm_head(out.last_hidden_state[:, -1])
