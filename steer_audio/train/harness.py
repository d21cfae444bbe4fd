"""The evaluation harness: candidate-token predictions of a trained projector on a bench split, and
their summary per condition (accuracy, share of hinted items where the hint was followed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..bench import listen_bench as lb
from ..data import prompts as P
from .config import TrainError
from .device import fp32_precision, resolve_device
from .embedded import embedded
from .encoder_cache import audio_key, build_encoder_cache
from .splice import PromptCache, last_logits


def predict(
    model: object,
    prompts: PromptCache,
    feats: dict[str, torch.Tensor],
    data_dir: Path,
    rows: Sequence[dict],
    batch: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Candidate-token predictions for rows: one dict per row with the choice scores and the prediction."""
    out = []
    with torch.no_grad():
        for i in range(0, len(rows), batch):
            chunk = rows[i : i + batch]
            fs = [feats[audio_key(data_dir, r)] for r in chunk]
            ids = [prompts.ids(r, f.shape[0]) for r, f in zip(chunk, fs, strict=True)]
            logp = torch.log_softmax(last_logits(model, ids, fs).float(), -1)
            cand = [prompts.choice_ids(r) for r in chunk]
            # only the candidates' log-probabilities leave the device (a few values per row)
            picked = [logp[j, c].tolist() for j, c in enumerate(cand)]
            for r, scores in zip(chunk, picked, strict=True):
                pred = r["choices"][int(np.argmax(scores))]
                out.append(
                    {
                        "id": r["id"],
                        "condition": r["condition"],
                        "task": r["task"],
                        "template": r["template"],
                        "answer": r["answer"],
                        "prior_choice": r["prior_choice"],
                        "prediction": pred,
                        "correct": pred == r["answer"],
                        "followed_prior": None if r["prior_choice"] is None else pred == r["prior_choice"],
                        "choice_logprobs": scores,
                    }
                )
            if progress is not None:
                progress(min(i + batch, len(rows)), len(rows))
    return out


def summarize(preds: Sequence[dict], by: str | None = None) -> dict[str, dict[str, float]]:
    groups: dict[str, list[dict]] = {}
    for p in preds:
        key = p["condition"] if by is None else f"{p['condition']}/{p[by]}"
        groups.setdefault(key, []).append(p)
    out = {}
    for k, g in sorted(groups.items()):
        fol = [p["followed_prior"] for p in g if p["followed_prior"] is not None]
        out[k] = {
            "n": len(g),
            "accuracy": sum(p["correct"] for p in g) / len(g),
            "prior_follow": (sum(fol) / len(fol)) if fol else float("nan"),
        }
    return out


def limit_rows(rows: list[dict], limit: int | None) -> list[dict]:
    """The first ``limit`` base items of each template (all their twins)."""
    if limit is None:
        return rows
    keep: dict[str, list[str]] = {}
    for r in rows:
        ids = keep.setdefault(r["template"], [])
        if r["twin_of"] not in ids and len(ids) < limit:
            ids.append(r["twin_of"])
    kept = {i for ids in keep.values() for i in ids}
    return [r for r in rows if r["twin_of"] in kept]


def evaluate(
    data_dir: Path,
    weights: Path,
    split: str = "test",
    cache_dir: Path | None = None,
    work: Path | None = None,
    threads: int = 2,
    console: Any = None,
    limit: int | None = None,
    device: str = "cpu",
    model: str = "mini",
    scoring: str = "",
) -> tuple[list[dict], dict]:
    """Candidate-token predictions of a trained embedded model on one split (all its conditions)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    dev = resolve_device(device)
    spec = embedded(model)
    torch.set_num_threads(threads)
    con = console if console is not None else Console(stderr=True)
    rows = limit_rows(lb.load_items(Path(data_dir), split=split), limit)
    if not rows:
        raise TrainError(f"no {split!r} rows in {data_dir}")
    net, processor = spec.build(cache_dir)
    spec.load_weights(net, Path(weights))
    net.to(dev)
    work = Path(work) if work is not None else Path(data_dir)
    work.mkdir(parents=True, exist_ok=True)
    prompts = PromptCache(processor, P.prompt_spec(scoring or spec.scoring))
    with (
        fp32_precision(),
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=con,
        ) as prog,
    ):
        t1 = prog.add_task(f"encoding {split}", total=None)
        feats = build_encoder_cache(
            net,
            processor,
            Path(data_dir),
            rows,
            work
            / f"encoder_cache_{split}.safetensors",  # Whisper-base features: the same for every embedded model
            progress=lambda k, n: prog.update(t1, completed=k, total=n),
        )
        t2 = prog.add_task(f"scoring {split}", total=len(rows))
        preds = predict(
            net, prompts, feats, Path(data_dir), rows, progress=lambda k, n: prog.update(t2, completed=k)
        )
    summary = {
        "model": model,
        "scoring": prompts.prompt.scoring,
        "by_condition": summarize(preds),
        "by_task": summarize(preds, "task"),
        "by_template": summarize(preds, "template"),
    }
    return preds, summary
