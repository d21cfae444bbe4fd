"""Train an embedded model's projector on listen-bench (seeded, resumable; CPU or one GPU).

The audio encoder is frozen, so its outputs are computed once per clip (``encoder_cache``). Each step
samples rows (``sampler``), splices the projected features into the prompt (``splice``) and takes the
cross-entropy of the target's candidate token at the final prompt position: over the item's candidates
(``loss="choices"``, matching candidate scoring) or over the full vocabulary (``loss="vocab"``). The
candidate token is the option text's first token (``first-token``) or the option's label letter
(``letters``, the paper's protocol), as the model's table row or ``cfg.scoring`` says.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..bench import listen_bench as lb
from ..data import prompts as P
from ..io import save_tensors, sha256_file, write_text
from .config import TrainConfig, TrainError
from .device import fp32_precision, hardware, model_device, resolve_device
from .embedded import EmbeddedModel, embedded
from .encoder_cache import audio_key, build_encoder_cache, load_wave
from .harness import predict, summarize
from .sampler import index_twins, load_extra_rows, sample_batch
from .splice import PromptCache, candidate_logits, last_logits, model_last_logits

log = logging.getLogger(__name__)

ENCODER_CACHE = "encoder_cache.safetensors"
CHECKPOINT = "checkpoint.safetensors"
STATE = "state.json"
PROJECTOR_PREFIX = "model.multi_modal_projector."
#: settings that may change on --resume (the schedule and where it runs)
MUTABLE_ON_RESUME = {"steps", "eval_every", "checkpoint_every", "threads", "lr", "device"}


def _projector_params(model: object) -> dict[str, torch.nn.Parameter]:
    return {k: p for k, p in model.named_parameters() if k.startswith(PROJECTOR_PREFIX)}  # type: ignore[attr-defined]


def _save_checkpoint(out: Path, model: object, opt: torch.optim.Optimizer, state: dict) -> None:
    tensors = {k: v.detach().cpu().clone() for k, v in _projector_params(model).items()}
    for k, p in _projector_params(model).items():
        st = opt.state.get(p, {})
        for name in ("exp_avg", "exp_avg_sq"):
            if name in st:
                tensors[f"adam.{name}.{k}"] = st[name].cpu().clone()
    save_tensors(out / CHECKPOINT, tensors)
    write_text(out / STATE, json.dumps(state, indent=1) + "\n")


def _lr(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * frac))


def _resume_state(prev: dict, cfg: TrainConfig, data_sha: str) -> dict:
    # a setting a run saved before it existed counts as its default
    defaults = asdict(TrainConfig())
    changed = {k for k, v in asdict(cfg).items() if prev["config"].get(k, defaults[k]) != v}
    if changed - MUTABLE_ON_RESUME:
        raise TrainError(
            f"--resume with a different configuration ({', '.join(sorted(changed - MUTABLE_ON_RESUME))})"
        )
    if changed:
        prev.setdefault("schedule_changes", []).append(
            {
                "at_step": prev["step"],
                "from": {k: prev["config"].get(k, defaults[k]) for k in changed},
                "to": {k: asdict(cfg)[k] for k in changed},
            }
        )
        prev["config"] = asdict(cfg)
    if prev.get("data_sha256") != data_sha:
        raise TrainError("--resume with a different data set than the saved run")
    return prev


def train(
    data_dir: Path,
    out: Path,
    cfg: TrainConfig,
    resume: bool = False,
    cache_dir: Path | None = None,
    console: Any = None,
    extra_train: Sequence[Path] = (),
) -> dict:
    """Train the projector; write ``projector.safetensors`` and ``recipe.json`` into ``out``.

    ``extra_train``: more bench folders whose ``train`` rows are mixed in (``cfg.extra_share``)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from safetensors.torch import load_file

    dev = resolve_device(cfg.device)  # before anything is read or written
    spec = embedded(cfg.model)
    scoring = cfg.scoring or spec.scoring
    prompt = P.prompt_spec(scoring) if scoring in P.TEMPLATES else None
    if prompt is None:
        raise TrainError(f"unknown scoring {scoring!r} (letters or first-token)")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    con = console if console is not None else Console(stderr=True)
    data_dir, out = Path(data_dir), Path(out)
    if not (data_dir / lb.DATA_JSON).is_file():
        raise TrainError(f"no {lb.DATA_JSON} in {data_dir}; run `steer-audio bench --out {data_dir}`")
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE
    if state_path.is_file() and not resume:
        raise TrainError(f"{out} already holds a training run; pass --resume or choose another --out")
    rows = lb.load_items(data_dir)
    train_rows = [r for r in rows if r["split"] == "train"]
    twins = [t for _, t in sorted(index_twins(train_rows).items())]
    extra_rows = load_extra_rows(extra_train)
    extra = [t for _, t in sorted(index_twins(extra_rows).items())]
    extra_sha = [lb.dataset_sha256(Path(d)) for d in extra_train]
    calib = [r for r in rows if r["split"] == "calib" and r["condition"] in ("neutral", "misleading")]
    calib_ids = sorted({r["twin_of"] for r in calib})[: cfg.eval_items]
    calib = [r for r in calib if r["twin_of"] in set(calib_ids)]
    if not twins:
        raise TrainError("the data set has no training items")
    if cfg.loss not in ("choices", "vocab"):
        raise TrainError(f"unknown loss {cfg.loss!r} (choices or vocab)")

    model, processor = spec.build(cache_dir)
    model.to(dev)
    params = _projector_params(model)
    for p in params.values():
        p.requires_grad_(True)
    with torch.no_grad():  # small random init so that the first audio embeddings are not all equal
        g = torch.Generator().manual_seed(cfg.seed)
        w = params[PROJECTOR_PREFIX + "linear.weight"]
        w.copy_(torch.randn(w.shape, generator=g) * 0.02)
    opt = torch.optim.AdamW(list(params.values()), lr=cfg.lr, weight_decay=0.0)
    state: dict = {
        "step": 0,
        "config": asdict(cfg),
        "history": [],
        "data_sha256": lb.dataset_sha256(data_dir),
        **({"extra_data_sha256": extra_sha} if extra_sha else {}),
    }
    if resume and state_path.is_file():
        state = _resume_state(json.loads(state_path.read_text()), cfg, state["data_sha256"])
        if state.get("extra_data_sha256", []) != extra_sha:
            raise TrainError("--resume with different --extra-train data than the saved run")
        ck = load_file(str(out / CHECKPOINT))
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(ck[k])
        for k, p in params.items():  # rebuild Adam moments
            if f"adam.exp_avg.{k}" in ck:
                opt.state[p] = {
                    "step": torch.tensor(float(state["step"])),
                    "exp_avg": ck[f"adam.exp_avg.{k}"].to(dev),
                    "exp_avg_sq": ck[f"adam.exp_avg_sq.{k}"].to(dev),
                }
        log.info("resuming at step %d", state["step"])

    prog = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=con,
    )
    t0 = time.time()
    with fp32_precision(), prog:
        enc_task = prog.add_task("encoding clips", total=None, info="")
        feats = build_encoder_cache(
            model,
            processor,
            data_dir,
            train_rows + extra_rows + calib,
            out / ENCODER_CACHE,
            progress=lambda k, n: prog.update(enc_task, completed=k, total=n),
        )
        t_enc = time.time() - t0
        prompts = PromptCache(processor, prompt)
        _check_equivalence(model, processor, prompts, feats, data_dir, calib[0] if calib else train_rows[0])
        task = prog.add_task("training", total=cfg.steps, completed=state["step"], info="")
        model.train(False)
        while state["step"] < cfg.steps:
            step = state["step"]
            batch = sample_batch(twins, cfg, step, extra)
            loss = _step(model, prompts, feats, data_dir, batch, cfg, dev, opt, params, step)
            state["step"] = step + 1
            state.setdefault("losses", []).append(round(loss, 4))
            prog.update(task, completed=state["step"], info=f"loss {loss:.3f}")
            if calib and (state["step"] % cfg.eval_every == 0 or state["step"] == cfg.steps):
                s = summarize(predict(model, prompts, feats, data_dir, calib))
                state["history"].append(
                    {"step": state["step"], "calib": s, "elapsed_s": round(time.time() - t0, 1)}
                )
                con.print(
                    f"step {state['step']}: "
                    + ", ".join(
                        f"{k} acc {v['accuracy']:.2f} follow {v['prior_follow']:.2f}" for k, v in s.items()
                    )
                )
            if state["step"] % cfg.checkpoint_every == 0 or state["step"] == cfg.steps:
                _save_checkpoint(out, model, opt, state)
    final = {k: v.detach().cpu().clone().contiguous() for k, v in params.items()}
    recipe = _recipe(spec, cfg, state, final, len(twins), t_enc, time.time() - t0, dev, prompt)
    if extra_train:
        recipe["extra_train"] = [
            {
                "folder": Path(d).name,
                "json_sha256": h,
                "train_base_items": len(index_twins(load_extra_rows([d]))),
            }
            for d, h in zip(extra_train, extra_sha, strict=True)
        ]
    save_tensors(out / spec.projector_file, final, metadata={"recipe": spec.recipe_file, "model": spec.name})
    write_text(out / spec.recipe_file, json.dumps(recipe, indent=1) + "\n")
    recipe["projector_sha256"] = sha256_file(out / spec.projector_file)
    return recipe


def _step(
    model: Any,
    prompts: PromptCache,
    feats: dict[str, torch.Tensor],
    data_dir: Path,
    batch: list[tuple[dict, str]],
    cfg: TrainConfig,
    dev: torch.device,
    opt: torch.optim.Optimizer,
    params: dict[str, torch.nn.Parameter],
    step: int,
) -> float:
    fs = [feats[audio_key(data_dir, r)] for r, _ in batch]
    ids = [prompts.ids(r, f.shape[0]) for (r, _), f in zip(batch, fs, strict=True)]
    cands = torch.tensor([prompts.choice_ids(r) for r, _ in batch], device=dev)
    tpos = torch.tensor([r["choices"].index(t) for r, t in batch], device=dev)
    for gp in opt.param_groups:
        gp["lr"] = _lr(cfg, step)
    if cfg.loss == "vocab":
        logits = last_logits(model, ids, fs)
        loss = torch.nn.functional.cross_entropy(
            logits.float(), cands[torch.arange(len(batch), device=dev), tpos]
        )
    else:
        loss = torch.nn.functional.cross_entropy(candidate_logits(model, ids, fs, cands).float(), tpos)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.clip > 0:
        torch.nn.utils.clip_grad_norm_(list(params.values()), cfg.clip)
    opt.step()
    return float(loss.detach())


def _recipe(
    spec: EmbeddedModel,
    cfg: TrainConfig,
    state: dict,
    final: dict[str, torch.Tensor],
    n_twins: int,
    t_enc: float,
    seconds: float,
    dev: torch.device,
    prompt: P.PromptSpec,
) -> dict:
    losses = state.get("losses", [])
    return {
        "model": spec.description,
        "scoring": prompt.to_json(),
        "trained": sorted(final),
        "config": asdict(cfg),
        "data_sha256": state["data_sha256"],
        "data_generator": lb.GENERATOR_VERSION,
        "train_base_items": n_twins,
        "last_invocation_encode_seconds": round(t_enc, 1),
        "last_invocation_seconds": round(seconds, 1),
        "loss_mean_per_50_steps": [
            round(float(np.mean(losses[i : i + 50])), 4) for i in range(0, len(losses), 50)
        ],
        "history": state["history"],
        "schedule_changes": state.get("schedule_changes", []),
        "final_loss_mean_last20": float(np.mean(losses[-20:] or [float("nan")])),
        "hardware": hardware(dev),
    }


def _check_equivalence(
    model: object,
    processor: Any,
    prompts: PromptCache,
    feats: dict[str, torch.Tensor],
    data_dir: Path,
    row: dict,
) -> None:
    """The cached-feature path must reproduce the real model's forward (last-position logits)."""
    sr = processor.feature_extractor.sampling_rate
    wave = load_wave(data_dir, row["audio_id"], sr)
    inputs = processor(text=prompts.text(row), audio=[wave], sampling_rate=sr, return_tensors="pt")
    dev = model_device(model)
    inputs = {k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    with torch.no_grad():
        ref = model_last_logits(model, **inputs)
        f = feats[audio_key(data_dir, row)]
        ids = prompts.ids(row, f.shape[0])
        if ids != inputs["input_ids"][0].tolist():
            raise TrainError("prompt ids differ from the processor's")
        mine = last_logits(model, [ids], [f])
    diff = float((ref - mine).abs().max())
    # relative to the logits' scale: float32 over a whole LM differs by ~1e-5 of it with the CPU's kernel
    # choice (1.2e-3 absolute at |logit| 26 on an AMD EPYC); a wrong feature or prompt is off by >= 1e-2 of it
    tol = 1e-4 * max(1.0, float(ref.abs().max()))
    if diff > tol:
        raise TrainError(f"cached-feature forward differs from the model forward by {diff} (> {tol:.2g})")
    log.info("cached-feature path matches the model forward (max |diff| %.2e)", diff)
