"""Train mini's projector on listen-bench (CPU-friendly, seeded, resumable).

The audio encoder is frozen, so its outputs are computed once per clip and cached (safetensors).
Each step samples training rows: with probability ``no_hint`` the question has no hint; otherwise the
hint names the right answer with probability ``p`` (the text-prior reliability knob) and a wrong one
otherwise; a ``silence`` share of rows uses the all-zero twin, whose target is the hinted choice (so
digital silence is in distribution and means "fall back to the text"). The loss is cross-entropy of the
answer's first token at the final prompt position, over the item's candidate first tokens (``loss="choices"``,
the default, matching first-token scoring) or over the full vocabulary (``loss="vocab"``).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from steer_audio.bench import listen_bench as lb
from steer_audio.models.mini import assemble

from ..io import sha256_file

log = logging.getLogger(__name__)

ENCODER_CACHE = "encoder_cache.safetensors"
CHECKPOINT = "checkpoint.safetensors"
STATE = "state.json"
PROJECTOR_PREFIX = "model.multi_modal_projector."


@dataclass(frozen=True)
class TrainConfig:
    p: float = 0.9  # probability that a hint names the right answer
    no_hint: float = 0.5  # share of audio rows without a hint
    silence: float = 0.1  # share of rows with the all-zero twin (target: the hinted choice)
    steps: int = 300
    batch_size: int = 8
    lr: float = 2e-3
    warmup: int = 10
    clip: float = 0.0  # gradient-norm clipping (0: off, the committed step-1200 recipe)
    seed: int = 0
    checkpoint_every: int = 10
    eval_every: int = 100
    eval_items: int = 40  # calibration base items per probe (neutral + misleading)
    threads: int = 2
    loss: str = "choices"  # "choices": softmax over the item's candidate tokens; "vocab": full vocabulary
    device: str = "cpu"  # where the model runs ("cpu", "cuda", "cuda:1"); fp32 on every device


def resolve_device(name: str) -> torch.device:
    """``name`` as a torch device, with one clear error if it is unknown or not present here."""
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise TrainError(f"unknown device {name!r} (cpu, cuda, cuda:N)") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainError(f"device {name!r} asked for, but this torch sees no CUDA device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise TrainError(f"device {name!r} asked for, but only {torch.cuda.device_count()} CUDA devices")
        # fp32 means fp32 here too: no TF32 in the encoder's convolutions or in matmuls
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    elif dev.type != "cpu":
        raise TrainError(f"unsupported device {name!r} (cpu, cuda, cuda:N)")
    return dev


class TrainError(RuntimeError):
    pass


def _device(model: object) -> torch.device:
    """The device the (single-device) model lives on."""
    return model.model.multi_modal_projector.linear.weight.device  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------------------
# encoder cache


def _load_wave(data_dir: Path, audio_id: str) -> np.ndarray:
    import soundfile as sf

    y, sr = sf.read(str(data_dir / audio_id), dtype="float32")
    if sr != assemble.SAMPLING_RATE:
        raise TrainError(f"{audio_id}: {sr} Hz, expected {assemble.SAMPLING_RATE}")
    return np.asarray(y, dtype=np.float32)


def encode_audio(model: object, processor: object, waves: Sequence[np.ndarray]) -> list[torch.Tensor]:
    """Audio-tower outputs (before the projector), one [n_audio_tokens, d_model] tensor per wave: the same
    features as ``Qwen2AudioModel.forward``, with the encoder run on the clip's length (models/audio_embed.py)."""
    from ..models.audio_embed import tower_on_clip_length

    fe = processor.feature_extractor  # type: ignore[attr-defined]
    feats = fe(
        list(waves),
        sampling_rate=assemble.SAMPLING_RATE,
        return_attention_mask=True,
        padding="max_length",
        return_tensors="pt",
    )
    tower = model.model.audio_tower  # type: ignore[attr-defined]
    dev = _device(model)
    with torch.no_grad():
        h, out_len = tower_on_clip_length(
            tower, feats["input_features"].to(dev), feats["attention_mask"].to(dev)
        )
    h = h.float().cpu()  # the cache lives on the host (safetensors), one copy per batch
    return [h[i, : int(out_len[i])].clone() for i in range(h.shape[0])]


def build_encoder_cache(
    model: object,
    processor: object,
    data_dir: Path,
    rows: Sequence[dict],
    path: Path,
    batch: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Encode every distinct clip of ``rows`` once (silence twins: once per length); cache to ``path``."""
    from safetensors.torch import load_file, save_file

    cache: dict[str, torch.Tensor] = load_file(str(path)) if path.is_file() else {}
    todo: dict[str, str] = {}
    for r in rows:
        key = _audio_key(data_dir, r)
        if key not in cache and key not in todo:
            todo[key] = r["audio_id"]
    keys = list(todo)
    for i in range(0, len(keys), batch):
        chunk = keys[i : i + batch]
        waves = [_load_wave(data_dir, todo[k]) for k in chunk]
        for k, h in zip(chunk, encode_audio(model, processor, waves), strict=True):
            cache[k] = h
        if progress is not None:
            progress(min(i + batch, len(keys)), len(keys))
        if (i // batch) % 25 == 24 or i + batch >= len(keys):
            tmp = path.with_name(path.name + ".tmp")
            save_file(cache, str(tmp))
            tmp.replace(path)
    return cache


def _audio_key(data_dir: Path, row: dict) -> str:
    if row["condition"] == "silence":
        import soundfile as sf

        return f"silence-{sf.info(str(data_dir / row['audio_id'])).frames}"
    return row["audio_id"]


# ----------------------------------------------------------------------------------------------
# the language-model pass on cached audio features


class PromptCache:
    """Token ids of each row's prompt (chat template, audio expanded), and its choices' first tokens."""

    def __init__(self, processor: object) -> None:
        self.proc = processor
        self.tok = processor.tokenizer  # type: ignore[attr-defined]
        self._ids: dict[tuple[str, int], list[int]] = {}

    def ids(self, row: dict, n_audio: int) -> list[int]:
        key = (row["id"], n_audio)
        if key not in self._ids:
            text = self.proc.apply_chat_template(  # type: ignore[attr-defined]
                lb.conversation(row), add_generation_prompt=True, tokenize=False
            )
            text = text.replace(assemble.AUDIO_TOKEN, assemble.AUDIO_TOKEN * n_audio)
            self._ids[key] = list(self.tok(text)["input_ids"])
        return self._ids[key]

    def choice_ids(self, row: dict) -> list[int]:
        return lb.choice_token_ids(self.tok, row["choices"])


def last_hidden(model: object, ids: Sequence[Sequence[int]], feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Final-norm hidden state at the last position ([batch, d_model]) from token ids and cached
    audio-tower outputs."""
    m = model.model  # type: ignore[attr-defined]
    audio_id = model.config.audio_token_id  # type: ignore[attr-defined]
    dev = _device(model)
    width = max(len(x) for x in ids)
    pad = 0
    inp = torch.full((len(ids), width), pad, dtype=torch.long)
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
    choices loss reads, so the 262k-row vocabulary projection (and its backward) is skipped."""
    h = last_hidden(model, ids, feats)
    head = model.lm_head  # type: ignore[attr-defined]
    if getattr(head, "bias", None) is not None:
        raise TrainError("candidate_logits assumes an lm_head without bias")
    return torch.einsum("bd,bkd->bk", h, head.weight[cands.to(h.device)])


# ----------------------------------------------------------------------------------------------
# sampling and evaluation


def _index(rows: Sequence[dict]) -> dict[str, dict[str, dict]]:
    by: dict[str, dict[str, dict]] = {}
    for r in rows:
        by.setdefault(r["twin_of"], {})[r["condition"]] = r
    return by


def sample_batch(twins: list[dict[str, dict]], cfg: TrainConfig, step: int) -> list[tuple[dict, str]]:
    """Rows and their target choice for one step (deterministic in (seed, step))."""
    rng = np.random.default_rng([cfg.seed, step])
    out = []
    for _ in range(cfg.batch_size):
        tw = twins[int(rng.integers(0, len(twins)))]
        u = rng.random()
        if u < cfg.silence:
            row = (
                tw["silence"]
                if rng.random() < 0.5
                else {
                    **tw["consistent"],
                    "audio_id": tw["silence"]["audio_id"],
                    "condition": "silence",
                    "id": tw["consistent"]["id"],
                }
            )
            out.append((row, row["prior_choice"]))
        elif rng.random() < cfg.no_hint:
            out.append((tw["neutral"], tw["neutral"]["answer"]))
        elif rng.random() < cfg.p:
            out.append((tw["consistent"], tw["consistent"]["answer"]))
        else:
            out.append((tw["misleading"], tw["misleading"]["answer"]))
    return out


def predict(
    model: object,
    prompts: PromptCache,
    feats: dict[str, torch.Tensor],
    data_dir: Path,
    rows: Sequence[dict],
    batch: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """First-token predictions for rows: one dict per row with the choice scores and the prediction."""
    out = []
    with torch.no_grad():
        for i in range(0, len(rows), batch):
            chunk = rows[i : i + batch]
            fs = [feats[_audio_key(data_dir, r)] for r in chunk]
            ids = [prompts.ids(r, f.shape[0]) for r, f in zip(chunk, fs, strict=True)]
            logits = last_logits(model, ids, fs)
            logp = torch.log_softmax(logits.float(), -1)
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


# ----------------------------------------------------------------------------------------------
# training


def _save_checkpoint(out: Path, model: object, opt: torch.optim.Optimizer, state: dict) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().clone() for k, v in _projector_params(model).items()}
    for k, p in _projector_params(model).items():
        st = opt.state.get(p, {})
        for name in ("exp_avg", "exp_avg_sq"):
            if name in st:
                tensors[f"adam.{name}.{k}"] = st[name].cpu().clone()
    tmp = out / (CHECKPOINT + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(out / CHECKPOINT)
    tmpj = out / (STATE + ".tmp")
    tmpj.write_text(json.dumps(state, indent=1) + "\n")
    tmpj.replace(out / STATE)


def _projector_params(model: object) -> dict[str, torch.nn.Parameter]:
    return {k: p for k, p in model.named_parameters() if k.startswith(PROJECTOR_PREFIX)}  # type: ignore[attr-defined]


def _lr(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * frac))


def train(
    data_dir: Path,
    out: Path,
    cfg: TrainConfig,
    resume: bool = False,
    cache_dir: Path | None = None,
    console: Any = None,
) -> dict:
    """Train the projector; write ``projector.safetensors`` and ``recipe.json`` into ``out``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from safetensors.torch import load_file, save_file

    dev = resolve_device(cfg.device)  # before anything is read or written
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
    twins = [t for _, t in sorted(_index(train_rows).items())]
    calib = [r for r in rows if r["split"] == "calib" and r["condition"] in ("neutral", "misleading")]
    calib_ids = sorted({r["twin_of"] for r in calib})[: cfg.eval_items]
    calib = [r for r in calib if r["twin_of"] in set(calib_ids)]
    if not twins:
        raise TrainError("the data set has no training items")
    if cfg.loss not in ("choices", "vocab"):
        raise TrainError(f"unknown loss {cfg.loss!r} (choices or vocab)")

    model, processor = assemble.build_mini(cache_dir)
    model.to(dev)
    params = _projector_params(model)
    for p in params.values():
        p.requires_grad_(True)
        # small random init so that the first audio embeddings are not all equal
    with torch.no_grad():
        g = torch.Generator().manual_seed(cfg.seed)
        w = params[PROJECTOR_PREFIX + "linear.weight"]
        w.copy_(torch.randn(w.shape, generator=g) * 0.02)
    opt = torch.optim.AdamW(list(params.values()), lr=cfg.lr, weight_decay=0.0)
    state: dict = {
        "step": 0,
        "config": asdict(cfg),
        "history": [],
        "data_sha256": lb.dataset_sha256(data_dir),
    }
    if resume and state_path.is_file():
        prev = json.loads(state_path.read_text())
        mutable = {"steps", "eval_every", "checkpoint_every", "threads", "lr", "device"}
        # a setting a run saved before it existed counts as its default
        defaults = asdict(TrainConfig())
        changed = {k for k, v in asdict(cfg).items() if prev["config"].get(k, defaults[k]) != v}
        if changed - mutable:
            raise TrainError(
                f"--resume with a different configuration ({', '.join(sorted(changed - mutable))})"
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
        if prev.get("data_sha256") != state["data_sha256"]:
            raise TrainError("--resume with a different data set than the saved run")
        ck = load_file(str(out / CHECKPOINT))
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(ck[k])
        # rebuild Adam moments
        for k, p in params.items():
            if f"adam.exp_avg.{k}" in ck:
                opt.state[p] = {
                    "step": torch.tensor(float(prev["step"])),
                    "exp_avg": ck[f"adam.exp_avg.{k}"].to(dev),
                    "exp_avg_sq": ck[f"adam.exp_avg_sq.{k}"].to(dev),
                }
        state = prev
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
    with prog:
        enc_task = prog.add_task("encoding clips", total=None, info="")
        feats = build_encoder_cache(
            model,
            processor,
            data_dir,
            train_rows + calib,
            out / ENCODER_CACHE,
            progress=lambda k, n: prog.update(enc_task, completed=k, total=n),
        )
        t_enc = time.time() - t0
        prompts = PromptCache(processor)
        _check_equivalence(model, processor, prompts, feats, data_dir, calib[0])
        task = prog.add_task("training", total=cfg.steps, completed=state["step"], info="")
        model.train(False)
        while state["step"] < cfg.steps:
            step = state["step"]
            batch = sample_batch(twins, cfg, step)
            fs = [feats[_audio_key(data_dir, r)] for r, _ in batch]
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
                loss = torch.nn.functional.cross_entropy(
                    candidate_logits(model, ids, fs, cands).float(), tpos
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip > 0:
                torch.nn.utils.clip_grad_norm_(list(params.values()), cfg.clip)
            opt.step()
            state["step"] = step + 1
            state.setdefault("losses", []).append(round(float(loss.detach()), 4))
            prog.update(task, completed=state["step"], info=f"loss {loss.item():.3f}")
            if state["step"] % cfg.eval_every == 0 or state["step"] == cfg.steps:
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
    recipe = {
        "model": "mini (Whisper-base encoder + Gemma-3-270M in Qwen2AudioForConditionalGeneration)",
        "trained": sorted(final),
        "config": asdict(cfg),
        "data_sha256": state["data_sha256"],
        "data_generator": lb.GENERATOR_VERSION,
        "train_base_items": len(twins),
        "last_invocation_encode_seconds": round(t_enc, 1),
        "last_invocation_seconds": round(time.time() - t0, 1),
        "loss_mean_per_50_steps": [
            round(float(np.mean(state.get("losses", [])[i : i + 50])), 4)
            for i in range(0, len(state.get("losses", [])), 50)
        ],
        "history": state["history"],
        "schedule_changes": state.get("schedule_changes", []),
        "final_loss_mean_last20": float(np.mean(state.get("losses", [float("nan")])[-20:])),
        "hardware": _hardware(dev),
    }
    tmp = out / (assemble.PROJECTOR_FILE + ".tmp")
    save_file(final, str(tmp), metadata={"recipe": "recipe.json"})
    tmp.replace(out / assemble.PROJECTOR_FILE)
    (out / (assemble.RECIPE_FILE + ".tmp")).write_text(json.dumps(recipe, indent=1) + "\n")
    (out / (assemble.RECIPE_FILE + ".tmp")).replace(out / assemble.RECIPE_FILE)
    recipe["projector_sha256"] = sha256_file(out / assemble.PROJECTOR_FILE)
    return recipe


def _hardware(dev: torch.device) -> dict[str, str]:
    """Where the last invocation ran (a GPU run is not bit-reproducible; the card belongs in the record)."""
    import platform

    import transformers

    name = (
        torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else (platform.processor() or platform.machine())
    )
    return {
        "device": str(dev),
        "name": name,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def _check_equivalence(
    model: object,
    processor: object,
    prompts: PromptCache,
    feats: dict[str, torch.Tensor],
    data_dir: Path,
    row: dict,
) -> None:
    """The cached-feature path must reproduce the real model's forward (last-position logits)."""
    wave = _load_wave(data_dir, row["audio_id"])
    text = processor.apply_chat_template(lb.conversation(row), add_generation_prompt=True, tokenize=False)  # type: ignore[attr-defined]
    inputs = processor(text=text, audio=[wave], sampling_rate=assemble.SAMPLING_RATE, return_tensors="pt")  # type: ignore[operator]
    dev = _device(model)
    inputs = {k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    with torch.no_grad():
        ref = assemble.last_position_logits(model, **inputs)
        f = feats[_audio_key(data_dir, row)]
        ids = prompts.ids(row, f.shape[0])
        if ids != inputs["input_ids"][0].tolist():
            raise TrainError("prompt ids differ from the processor's")
        mine = last_logits(model, [ids], [f])
    diff = float((ref - mine).abs().max())
    if diff > 1e-3:
        raise TrainError(f"cached-feature forward differs from the model forward by {diff}")
    log.info("cached-feature path matches the model forward (max |diff| %.2e)", diff)


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
) -> tuple[list[dict], dict]:
    """First-token predictions of a trained mini on one split (all four conditions).

    ``limit`` keeps the first ``limit`` base items of each template (all their twins).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    dev = resolve_device(device)
    torch.set_num_threads(threads)
    con = console if console is not None else Console(stderr=True)
    rows = lb.load_items(Path(data_dir), split=split)
    if limit is not None:
        keep: dict[str, list[str]] = {}
        for r in rows:
            ids = keep.setdefault(r["template"], [])
            if r["twin_of"] not in ids and len(ids) < limit:
                ids.append(r["twin_of"])
        kept = {i for ids in keep.values() for i in ids}
        rows = [r for r in rows if r["twin_of"] in kept]
    model, processor = assemble.build_mini(cache_dir)
    assemble.load_trained_weights(model, Path(weights))
    model.to(dev)
    work = Path(work) if work is not None else Path(data_dir)
    work.mkdir(parents=True, exist_ok=True)
    prompts = PromptCache(processor)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=con,
    ) as prog:
        t1 = prog.add_task(f"encoding {split}", total=None)
        feats = build_encoder_cache(
            model,
            processor,
            Path(data_dir),
            rows,
            work / f"encoder_cache_{split}.safetensors",
            progress=lambda k, n: prog.update(t1, completed=k, total=n),
        )
        t2 = prog.add_task(f"scoring {split}", total=len(rows))
        preds = predict(
            model, prompts, feats, Path(data_dir), rows, progress=lambda k, n: prog.update(t2, completed=k)
        )
    summary = {
        "by_condition": summarize(preds),
        "by_task": summarize(preds, "task"),
        "by_template": summarize(preds, "template"),
    }
    return preds, summary
