"""The generate protocol of evaluation: every method answers in free text (greedy decoding, the steering
applied at t and at every new position, steer/generate.py) and MMAU's own rule scores the text
(evaluate/mmau_score.py), the way the leaderboard numbers the paper quotes were made.

Each method decodes at the configuration the logits protocol chose for it on the calibration split (its
alpha, layer, head set): nothing here looks at the evaluation labels before scoring. The per-example
directions come from one capture of the audio and negative passes: the run's own capture when the generation
prompt is the run's prompt, else a capture of the evaluation items under the generation prompt (the
directions must be read at the t of the prompt that is decoded). Methods without a generation form (the
direction controls) are skipped and listed."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..capture.cache import CaptureData
from ..capture.inputs import encode
from ..capture.prepare import neg_seed
from ..capture.trace import envoys
from ..data.audio import load_audio, negative
from ..data.mmau import Example
from ..data.prompts import GENERATION_TEMPLATES, PromptSpec
from ..errors import SteerAudioError
from ..progress import bar
from ..steer import avs
from ..steer.forward import head_delta
from ..steer.generate import (
    AvsSchedule,
    Greedy,
    HeadAdd,
    LayerAdd,
    LogitContrast,
    Steering,
    eos_ids,
    generate,
)
from .mmau_score import extract, string_match
from .stats import bootstrap_ci, mcnemar

PROTOCOLS = ("logits", "generate")
#: the run's own prompt (the one the logits protocol scores) as the generation prompt
OWN_TEMPLATE = "model"


@dataclass(frozen=True)
class GenerateConfig:
    template: str = OWN_TEMPLATE
    max_new_tokens: int = 32
    batch_size: int = 8

    def validate(self) -> None:
        if self.template != OWN_TEMPLATE and self.template not in GENERATION_TEMPLATES:
            names = ", ".join([OWN_TEMPLATE, *GENERATION_TEMPLATES])
            raise SteerAudioError(f"unknown --template {self.template!r}: use {names}")
        if self.max_new_tokens < 1:
            raise SteerAudioError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise SteerAudioError("--batch-size must be at least 1")


@dataclass(frozen=True)
class GenerationPrompt:
    spec: PromptSpec
    extraction: str
    source: str

    def to_json(self) -> dict[str, Any]:
        return {**self.spec.to_json(), "extraction": self.extraction, "source": self.source}


def generation_prompt(own: PromptSpec, template: str) -> GenerationPrompt:
    """The prompt decoded under `template` (OWN_TEMPLATE: the run's prompt, text scored as it is)."""
    if template == OWN_TEMPLATE:
        return GenerationPrompt(own, "none", "the run's own prompt (the one the logits protocol scores)")
    text, rule, source = GENERATION_TEMPLATES[template]
    return GenerationPrompt(replace(own, template=text), rule, f"{template}: {source}")


# -- methods: the configuration the logits protocol chose -> a steering of the decode ---------------------
_HEAD = re.compile(r"^L(\d+)H(\d+)$")


def _heads(names: list[str]) -> list[tuple[int, int]]:
    out = []
    for n in names:
        m = _HEAD.match(n)
        if m is None:
            raise SteerAudioError(f"head name {n!r} is not of the form L12H07")
        out.append((int(m.group(1)), int(m.group(2))))
    return out


def _layer_add(p: dict[str, Any], d: CaptureData, n_layers: int) -> Steering:
    delta = d["resid_a"].float() - d["resid_n"].float()  # [N, L, d]
    if "layer_weights" in p:
        v = sum(float(w) * delta[:, int(layer)] for layer, w in p["layer_weights"].items())
    else:
        v = delta[:, int(p["layer"])]
    return LayerAdd(torch.as_tensor(v), float(p["alpha"]))


def _head_add(p: dict[str, Any], d: CaptureData, n_layers: int) -> Steering:
    return HeadAdd(head_delta(d["dz"], _heads(p["heads"]), n_layers), float(p["alpha"]))


def _avs(p: dict[str, Any], d: CaptureData, n_layers: int) -> Steering:
    sched = torch.tensor(p["schedule"]) if "schedule" in p else avs.layer_schedule(n_layers)
    return AvsSchedule(avs.avs_vectors(d["resid_a"], d["resid_n"]), sched, float(p["alpha"]))


Builder = Callable[[dict[str, Any], CaptureData, int], Steering]

#: method name (as in the results table; `head-level/...` by prefix) -> steering of the decode
BUILDERS: dict[str, Builder] = {
    "baseline": lambda p, d, n: Greedy(),
    "head-guided": _layer_add,
    "random-layer": _layer_add,
    "single-layer": _layer_add,
    "head-level": _head_add,
    "avs": _avs,
    "aad": lambda p, d, n: LogitContrast("aad", float(p["alpha"])),
    "contrastive-options": lambda p, d, n: LogitContrast("contrastive-options", float(p["alpha"])),
}


CONTRASTIVE = ("aad", "contrastive-options")


def builder(name: str) -> Builder | None:
    return BUILDERS.get(name) or BUILDERS.get(name.split("/")[0] if name.startswith("head-level/") else "")


@dataclass
class Method:
    """A method at its chosen configuration: its table name and parameters (alpha, layer, heads, ...)."""

    name: str
    params: dict[str, Any]


@dataclass
class GenerateResult:
    prompt: GenerationPrompt
    cfg: GenerateConfig
    #: per method: per evaluation item (in order) the generated text, what the rule scored, correctness
    rows: dict[str, list[dict[str, Any]]]
    skipped: list[str]


def run(
    m: Any,
    methods: list[Method],
    examples: list[Example],
    data: CaptureData,
    prompt: GenerationPrompt,
    cfg: GenerateConfig,
    negative_kind: str = "silence",
    seed: int = 0,
) -> GenerateResult:
    """Decode every example under every method (batches outer, methods inner: one encoding per batch); the
    contrastive methods decode the run's negative (`negative_kind`, seeded per example as in the capture)
    in parallel."""
    cfg.validate()
    todo = [mt for mt in methods if builder(mt.name) is not None]
    skipped = [mt.name for mt in methods if builder(mt.name) is None]
    if negative_kind == "drop":  # no-audio prompts are shorter: not a parallel decode of the same positions
        skipped += [mt.name for mt in todo if mt.name in CONTRASTIVE]
        todo = [mt for mt in todo if mt.name not in CONTRASTIVE]
    tok = m.processor.tokenizer
    eos = eos_ids(m)
    pad = int(tok.pad_token_id if tok.pad_token_id is not None else eos[0])
    ev = envoys(m.lm, m.arch, m.geom, m.name)
    rows: dict[str, list[dict[str, Any]]] = {mt.name: [] for mt in todo}
    n_layers = m.geom.n_layers
    with bar(len(examples) * len(todo), "generate") as p:
        for s in range(0, len(examples), cfg.batch_size):
            chunk = examples[s : s + cfg.batch_size]
            sub = data.subset([e.id for e in chunk])
            wavs = [load_audio(e.audio_path, e.audio_array, max_seconds=m.audio_window_s) for e in chunk]
            negs = [
                negative(
                    w, "silence" if negative_kind == "drop" else negative_kind, seed=neg_seed(seed, e.id)
                )
                for w, e in zip(wavs, chunk, strict=True)
            ]
            b = encode(m.processor, chunk, wavs, negs, prompt.spec, m.geom.audio_token_id)
            both = m.model_inputs(b.model_inputs, b.row_keys)
            audio = {k: v[: len(chunk)] for k, v in both.items()}
            for mt in todo:
                p.status(mt.name)
                st = builder(mt.name)(mt.params, sub, n_layers)  # type: ignore[misc]
                g = generate(m.lm, ev, both if st.needs_negative else audio, st, cfg.max_new_tokens, eos, pad)
                for ex, text, n_new, fin in zip(chunk, g.texts(tok), g.lengths, g.finished, strict=True):
                    out = extract(text, prompt.extraction)
                    rows[mt.name].append(
                        {
                            "id": ex.id,
                            "text": text,
                            "model_output": out,
                            "correct": string_match(ex.answer, out, list(ex.choices)),
                            "new_tokens": n_new,
                            "finished": fin,
                        }
                    )
                p.advance(len(chunk))
    return GenerateResult(prompt, cfg, rows, skipped)


# -- the table: accuracy per method, McNemar vs the generated baseline and vs the same method's logits ------
def table(
    res: GenerateResult,
    n_missing: int,
    logits_correct: dict[str, np.ndarray] | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per method; missing items (no capture) count as wrong, as in the logits table."""
    base = None
    out = []
    for name, rows in res.rows.items():
        c = np.array([float(r["correct"]) for r in rows] + [0.0] * n_missing)
        row: dict[str, Any] = {
            "method": name,
            "protocol": "generate",
            "accuracy": float(c.mean()) if len(c) else float("nan"),
            "ci95": bootstrap_ci(c, seed=seed),
            "n": len(c),
            "n_missing": n_missing,
            "empty_outputs": sum(not r["model_output"].strip() for r in rows),
            "unfinished": sum(not r["finished"] for r in rows),
        }
        if name == "baseline":
            base = c
        elif base is not None:
            row["gain_pp"] = 100 * (row["accuracy"] - float(base.mean()))
            row["mcnemar_vs_baseline"] = mcnemar(base, c)
        if logits_correct and name in logits_correct and len(logits_correct[name]) == len(c):
            lc = logits_correct[name]
            row["logits_accuracy"] = float(lc.mean())
            row["mcnemar_vs_logits"] = mcnemar(lc, c)
        out.append(row)
    return out


def prediction_rows(res: GenerateResult, methods: list[Method]) -> list[dict[str, Any]]:
    """predictions.jsonl rows of the generate protocol (the generated text kept per item)."""
    params = {mt.name: mt.params for mt in methods}
    return [
        {
            "id": r["id"],
            "method": name,
            "protocol": "generate",
            "alpha": params.get(name, {}).get("alpha"),
            "layer": params.get(name, {}).get("layer"),
            "text": r["text"],
            "model_output": r["model_output"],
            "correct": r["correct"],
            "new_tokens": r["new_tokens"],
            "finished": r["finished"],
        }
        for name, rows in res.rows.items()
        for r in rows
    ]


def mmau_items(res: GenerateResult, name: str, raw: dict[str, Example]) -> list[dict[str, Any]]:
    """The official scorer's input for one method: the item as MMAU has it, `model_output` = scored text."""
    return [
        {
            "id": r["id"],
            "question": raw[r["id"]].question,
            "choices": list(raw[r["id"]].choices),
            "answer": raw[r["id"]].answer,
            **raw[r["id"]].extra,
            "model_output": r["model_output"],
            "model_output_ori": r["text"],
        }
        for r in res.rows[name]
    ]


def summary(res: GenerateResult, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "prompt": res.prompt.to_json(),
        "decoding": f"greedy, at most {res.cfg.max_new_tokens} new tokens, KV cache, left-padded batches of "
        f"{res.cfg.batch_size}",
        "alpha_from": "each method's configuration chosen on the calibration split by the logits protocol",
        "scorer": "MMAU evaluation.py string match (evaluate/mmau_score.py), missing items wrong",
        "skipped_methods": res.skipped,
        "table": rows,
    }


def write(out: Path, res: GenerateResult, rows: list[dict[str, Any]], raw: dict[str, Example]) -> None:
    """Official-scorer files per method (mmau_predictions.generate.<method>.json)."""
    from ..io import MMAU_PREDICTIONS, write_json

    for name in res.rows:
        fname = MMAU_PREDICTIONS.replace(".json", f".generate.{name.replace('/', '-')}.json")
        write_json(out / fname, mmau_items(res, name, raw))


def evaluate(
    out: Path,
    m: Any,
    ev: Any,
    ds: Any,
    cfg: GenerateConfig,
    negative_kind: str = "silence",
    seed: int = 0,
    capture_batch: int = 8,
    strict: bool = False,
) -> dict[str, Any]:
    """The generate protocol after an Evaluator has run (its results give each method's configuration):
    decode, score, append the per-item rows to predictions.jsonl, write the official scorer's files and
    record the generation prompt in meta.json. Returns the summary's `generate` section."""
    from ..capture.run import run_capture
    from ..io import META, PREDICTIONS, read_json, read_jsonl, write_json, write_jsonl

    cfg.validate()
    prompt = generation_prompt(m.prompt, cfg.template)
    data, examples = ev.de, list(ev.ev_ex)
    if prompt.spec != m.prompt:  # read the directions at t of the prompt that is decoded
        gm = replace(m, prompt=prompt.spec)
        cap = run_capture(
            gm, examples, out / "capture-generate", capture_batch, negative_kind, strict, ds.sha256, seed
        )
        have = set(cap.index["examples"])
        examples = [e for e in examples if e.id in have]
        data = cap.load([e.id for e in examples])
    methods = [Method(r.name, dict(r.params)) for r in ev.results]
    res = run(m, methods, examples, data, prompt, cfg, negative_kind, seed)
    n_missing = len(ev.ev_missing) + len(ev.ev_ex) - len(examples)
    # McNemar against the logits protocol pairs the same items: only when both scored the same ones
    same_items = [e.id for e in examples] == [e.id for e in ev.ev_ex]
    logits_correct = {r.name: ev.correct_vector(r.pred) for r in ev.results} if same_items else None
    rows = table(res, n_missing, logits_correct, seed)
    pred_path = out / PREDICTIONS
    old = list(read_jsonl(pred_path)) if pred_path.exists() else []
    write_jsonl(
        pred_path, [r for r in old if r.get("protocol") != "generate"] + prediction_rows(res, methods)
    )
    write(out, res, rows, {e.id: e for e in ds.examples})
    meta_path = out / META
    if meta_path.exists():
        meta = read_json(meta_path)
        meta["generate"] = {
            "prompt": prompt.to_json(),
            "max_new_tokens": cfg.max_new_tokens,
            "decoding": "greedy",
        }
        write_json(meta_path, meta)
    return summary(res, rows)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _p(m: dict[str, Any] | None) -> str:
    return "–" if not m else f"{m['p_value']:.3g}{' (exact)' if m['exact'] else ''}"


def markdown_table(gen: dict[str, Any]) -> list[str]:
    """The report's side-by-side section: per method, logits vs generate accuracy and McNemar between them."""
    pr = gen["prompt"]
    out = [
        "",
        "## Both protocols side by side (evaluation split)",
        "",
        f"- generate: {gen['decoding']}; alpha etc.: {gen['alpha_from']}; scorer: {gen['scorer']}.",
        f"- generation prompt ({pr['source']}): `{json.dumps(pr['template'])}`; answer read by rule "
        f"`{pr['extraction']}`.",
        "- McNemar (exact binomial below 25 discordant pairs) pairs each method's two protocols item by item, "
        "and each generated method with the generated baseline.",
    ]
    if gen.get("skipped_methods"):
        out.append(f"- not decoded (no generation form): {', '.join(gen['skipped_methods'])}.")
    out += [
        "",
        "| method | logits % | generate % | n | p logits vs generate | gain vs baseline (pp, generate) | "
        "p vs baseline (generate) | empty answers | hit max tokens |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in gen["table"]:
        gain = f"{r['gain_pp']:+.2f}" if "gain_pp" in r else ""
        out.append(
            f"| {r['method']} | {_pct(r.get('logits_accuracy'))} | {_pct(r['accuracy'])} | {r['n']} | "
            f"{_p(r.get('mcnemar_vs_logits'))} | {gain} | {_p(r.get('mcnemar_vs_baseline'))} | "
            f"{r['empty_outputs']} | {r['unfinished']} |"
        )
    return out
