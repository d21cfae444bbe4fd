"""Whole-pipeline orchestration shared by the CLI and recipes: data -> splits -> capture -> discover ->
evaluate -> report. Each stage is a function in its own sub-package; this module only wires them."""

from __future__ import annotations

import logging
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from .capture.cache import CaptureCache, CaptureData
from .capture.run import cache_key, run_capture
from .config import RunConfig
from .data import mmau
from .data.audio import NEGATIVES
from .data.prompts import LETTERS
from .discover.run import Discovery, run_discovery
from .errors import SteerAudioError
from .evaluate.mmau_score import official_accuracy
from .evaluate.run import Evaluator
from .io import (
    HEADS,
    META,
    MMAU_PREDICTIONS,
    PREDICTIONS,
    REPORT,
    SPLITS,
    SUMMARY,
    read_json,
    write_json,
    write_jsonl,
    write_text,
)
from .models import loaded
from .provenance import base_meta

log = logging.getLogger(__name__)

DATA_ALIASES = {"mmau": "mmau-test-mini.json", "mmau-v1": "mmau-test-mini-v1.json"}


def data_path(name: str) -> Path:
    if name in DATA_ALIASES:
        return Path(str(resources.files("steer_audio") / "assets" / "mmau" / DATA_ALIASES[name]))
    return Path(name)


def splits(plan: RunConfig) -> tuple[mmau.Dataset, list[mmau.Example], list[mmau.Example], dict[str, Any]]:
    if plan.data in DATA_ALIASES and plan.audio_root is None:
        raise SteerAudioError(
            f"--data {plan.data} is bundled without audio: pass --audio-root DIR, the folder that holds "
            "MMAU's test-mini-audios/ (the clips are not shipped)"
        )
    if plan.calib is not None and plan.calib_fraction is not None:
        raise SteerAudioError("--calib and --calib-fraction both choose the calibration split: give one")
    if plan.audio_root is not None and not Path(plan.audio_root).is_dir():
        raise SteerAudioError(f"--audio-root {plan.audio_root}: no such folder")
    bundled = plan.data in DATA_ALIASES  # MMAU's own files keep their repeated choices; others are refused
    ds = mmau.load(data_path(plan.data), plan.audio_root, keep_duplicate_choices=bundled)
    exs = ds.examples
    has_split_field = any("condition" in e.extra for e in exs[:1])
    if plan.calib_fraction is not None and (has_split_field or plan.calib_split or plan.eval_split):
        raise SteerAudioError(
            f"--calib-fraction {plan.calib_fraction}: {plan.data} chooses its splits by its `split` field "
            "(calibration = 'calib', evaluation = 'test'); drop --calib-fraction"
        )
    how: dict[str, Any]
    if plan.calib:
        cal_ds = mmau.load(
            data_path(plan.calib), plan.audio_root, keep_duplicate_choices=plan.calib in DATA_ALIASES
        )
        calib, evals = cal_ds.examples, exs
        how = {
            "how": f"calibration file {plan.calib} (sha256 {cal_ds.sha256})",
            "calib_sha256": cal_ds.sha256,
        }
    elif plan.calib_split or plan.eval_split or has_split_field:
        cs, es = plan.calib_split or "calib", plan.eval_split or "test"
        calib, evals = mmau.by_split_field(exs, cs, es)
        how = {"how": f"the file's `split` field: calibration = {cs!r}, evaluation = {es!r}"}
    else:
        frac = plan.calib_fraction if plan.calib_fraction is not None else 0.2
        calib, evals = mmau.carve(exs, frac, plan.seed)
        how = {
            "how": f"seeded stratified carve: {frac:.0%} of the file by domain (seed {plan.seed}) for calibration; evaluation on the rest"
        }
    if plan.limit is not None:
        if plan.limit < 1:
            raise SteerAudioError(f"--limit must be at least 1, got {plan.limit}")
        calib, evals = calib[: plan.limit], evals[: plan.limit]
    mmau.check_disjoint(calib, evals)
    _check_some_audio(calib + evals, ds, plan)
    how |= {"calib_ids": [e.id for e in calib], "eval_ids": [e.id for e in evals], "seed": plan.seed}
    return ds, calib, evals, how


def _check_some_audio(exs: list[mmau.Example], ds: mmau.Dataset, plan: RunConfig) -> None:
    """All clips absent means a wrong --audio-root, not N missing clips: say so before any capture."""
    if any(e.audio_array is not None or (e.audio_path is not None and e.audio_path.exists()) for e in exs):
        return
    first = next((e.audio_path for e in exs if e.audio_path is not None), None)
    where = f"--audio-root {plan.audio_root}" if plan.audio_root else f"the folder of {ds.source}"
    raise SteerAudioError(
        f"none of the {len(exs)} clips of {ds.source} exists under {where} (e.g. {first}): "
        "pass --audio-root DIR, the folder the items' audio_id paths are relative to"
    )


def check_from(run: Path, key: dict[str, Any]) -> Path:
    """Reuse another run's capture cache, refusing one made with another model or data file."""
    idx = run / "capture" / "capture_index.json"
    if not idx.exists():
        raise SteerAudioError(f"--from {run}: no capture cache there ({idx} missing)")
    old = read_json(idx)["key"]
    if old.get("model") != key["model"]:
        raise SteerAudioError(
            f"--from {run} was made with model {old.get('model', {}).get('name')!r}, not {key['model']['name']!r}"
        )
    if old.get("data_sha256") != key["data_sha256"]:
        raise SteerAudioError(
            f"--from {run} was made with data sha256 {old.get('data_sha256')} but this data file has {key['data_sha256']}"
        )
    return run / "capture"


def execute(stage: str, cfg: RunConfig, out: Path, remote: bool | str = False) -> dict[str, Any]:
    """One `discover` or `evaluate` run of `cfg` into the run directory `out`; returns summary.json's dict.

    `remote`: nnsight's `remote=` value for `cfg.remote` (the CLI resolves the server and waits for it)."""
    from .capture.backends import using
    from .data.named import resolve

    cfg = replace(cfg, data=resolve(cfg.data, out))
    with using("ray" if cfg.ray else cfg.backend, cfg.ray, replicas=cfg.devices):
        return _execute(stage, cfg, out, remote)


def _execute(stage: str, cfg: RunConfig, out: Path, remote: bool | str) -> dict[str, Any]:
    if cfg.negative not in NEGATIVES:
        raise SteerAudioError(f"unknown negative {cfg.negative!r}: use one of {', '.join(NEGATIVES)}")
    ds, calib, evals, split_info = splits(cfg)
    # with several devices the workers hold the replicas: this process needs only the weightless skeleton
    m = loaded.load(
        cfg.model,
        device=cfg.device,
        dtype=cfg.dtype,
        remote=remote or cfg.devices > 1,
        revision=cfg.revision,
        audio_encoder=cfg.audio_encoder,
    )
    cfg.validate(m.geom.n_total_heads)  # K, methods, grid: before any capture (the Evaluator checks again)
    key = cache_key(m, ds.sha256, cfg.negative, cfg.seed)
    cap_dir = check_from(cfg.from_run, key) if cfg.from_run else out / "capture"
    # a rerun with other settings is refused here, before splits.json / meta.json are rewritten
    CaptureCache(cap_dir).check(key)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / SPLITS, split_info)
    meta = base_meta(
        stage,
        model=m.describe(),
        data={
            "source": ds.source,
            "sha256": ds.sha256,
            "audio_root": ds.audio_root,
            "n_items": len(ds.examples),
        },
        negative=cfg.negative,
        seeds={"split": cfg.seed, "eval": cfg.seed},
        capture_dir=str(cap_dir),
        label_tokens=_label_tokens(m),
    )
    write_json(out / META, meta)
    rotations = [[mmau.rotate(e, r) for e in evals] for r in range(1, max(1, cfg.permute_options))]
    to_capture = calib + evals + [e for rot in rotations for e in rot]
    if cfg.devices > 1:
        from .capture.parallel import run_capture_parallel

        devs = (
            [f"cuda:{i}" for i in range(cfg.devices)]
            if m.device.startswith("cuda")
            else ["cpu"] * cfg.devices
        )
        load_kw = {
            "name": cfg.model,
            "dtype": cfg.dtype,
            "remote": remote,
            "revision": cfg.revision,
            "audio_encoder": cfg.audio_encoder,
        }
        cap_kw = {
            "batch_size": cfg.batch_size,
            "negative_kind": cfg.negative,
            "strict": cfg.strict,
            "data_sha": ds.sha256,
            "seed": cfg.seed,
            "levers": cfg.capture_levers,
        }
        from .capture.run import all_candidate_ids

        ro = all_candidate_ids(m, to_capture)
        cache = run_capture_parallel(load_kw, devs, to_capture, cap_dir, key, ro, **cap_kw)
        if not remote:  # the methods that run forward passes (head-level) need one replica here
            m = loaded.load(
                cfg.model,
                device=m.device,
                dtype=cfg.dtype,
                revision=cfg.revision,
                audio_encoder=cfg.audio_encoder,
            )
    else:
        cache = run_capture(
            m,
            to_capture,
            cap_dir,
            cfg.batch_size,
            cfg.negative,
            cfg.strict,
            ds.sha256,
            cfg.seed,
            levers=cfg.capture_levers,
        )
    if stage == "discover":  # discovery has its own runner (discover/run.py), not the Evaluator
        found = run_discovery(cache, calib, evals, cfg.k, cfg.ranking, cfg.normalise, cfg.draws, cfg.seed)
        disc, sets = found.discovery, found.sets
        _write_discovery(out, found.calib, found.evals, sets.ev, disc, m)
    else:
        ev = Evaluator(cache, calib, evals, cfg, model=m)
        disc, sets = ev.run(), ev.sets
        if rotations:
            ev.permutations(cache, rotations)
        _write_discovery(out, ev.dc, ev.de, ev.ev_ex, disc, m)
    _label_random_heads(out, m)
    summary: dict[str, Any] = {
        "model": m.describe(),
        "data": meta["data"],
        "negative": cfg.negative,
        "label_tokens": meta["label_tokens"],
        "splits": {
            "how": split_info["how"],
            "n_calib": len(calib),
            "n_eval": len(evals),
            "n_eval_missing": len(sets.ev_missing),
            "n_calib_missing": len(sets.cal_missing),  # real-audio items only (protocol.py)
        },
        "config": {**cfg.eval_fields(), "alphas": cfg.alphas},
        "discovery": disc.summary,
        "run_dir": str(out),
    }
    if stage == "evaluate":
        summary["table"] = ev.table()
        summary["k_sweep"] = ev.extra.get("k_sweep")
        summary["official_scorer"] = _write_predictions(out, ev, ds)
        generate = cfg.generate_config()
        if generate is not None:
            from .evaluate import generate_protocol

            summary["generate"] = generate_protocol.evaluate(
                out, m, ev, ds, generate, cfg.negative, cfg.seed, cfg.batch_size, cfg.strict
            )
        _write_report(out, summary, ev, disc)
    write_json(out / SUMMARY, summary)
    return summary


def _label_random_heads(out: Path, m: loaded.LoadedModel) -> None:
    """heads.json says RANDOM WEIGHTS too when the model is random (as the PNG, summary.json and meta.json do)."""
    path = out / HEADS
    if not path.exists():
        return
    heads = read_json(path)
    heads["random_weights"] = m.random_weights
    if m.random_weights:
        heads["warning"] = f"RANDOM WEIGHTS: {m.name} is a random-weight test model; these heads are noise"
    write_json(path, heads)


def _label_tokens(m: loaded.LoadedModel) -> Any:
    if m.prompt.scoring == "letters":
        tok = m.processor.tokenizer
        return {L: tok.encode(m.prompt.label_prefix + L, add_special_tokens=False) for L in LETTERS[:8]}
    return "first token of each option text (per item)"


def _write_discovery(
    out: Path,
    calib: CaptureData,
    evals: CaptureData,
    eval_ex: list[mmau.Example],
    disc: Discovery,
    m: loaded.LoadedModel,
) -> None:
    """heads.json, head_scores.safetensors, listening.jsonl (evaluation rows `evals`) and the r heatmap."""
    from .discover import run as drun
    from .report import plots

    drun.write(disc, out, calib, evals, eval_ex)
    title = f"{m.name}{' (RANDOM WEIGHTS)' if m.random_weights else ''}: r per head, top-{disc.heads.k} boxed"
    plots.heatmap(disc.r, list(disc.heads.heads), out / "heads_r.png", title)


def _write_predictions(out: Path, ev: Evaluator, ds: mmau.Dataset) -> dict[str, Any]:
    rows = []
    official: dict[str, Any] = {}
    raw_by_id = {e.id: e for e in ds.examples}
    for r in ev.results:
        pred_by_id = {e.id: int(p) for e, p in zip(ev.ev_ex, r.pred, strict=True)}
        items = []
        for e in ev.ev_ex + ev.ev_missing:
            p = pred_by_id.get(e.id)
            correct = p is not None and p in e.correct
            rows.append(
                {
                    "id": e.id,
                    "method": r.name,
                    "alpha": r.params.get("alpha"),
                    "layer": r.params.get("layer"),
                    "label": LETTERS[p] if p is not None else None,
                    "choice": e.choices[p] if p is not None else None,
                    "correct": correct,
                    "domain": e.domain,
                }
            )
            src = raw_by_id[e.id]
            item = {
                "id": e.id,
                "question": src.question,
                "choices": list(src.choices),
                "answer": src.answer,
                **src.extra,
            }
            if p is not None:
                item["model_output"] = e.choices[p]
            items.append(item)
        acc, flags = official_accuracy(items)
        ours = [row["correct"] for row in rows[-len(items) :]]
        official[r.name] = {
            "accuracy": acc,
            "mismatched_items": [it["id"] for it, a, b in zip(items, flags, ours, strict=True) if a != b],
        }
        if r.name in ("baseline", "head-guided"):
            write_json(out / MMAU_PREDICTIONS.replace(".json", f".{r.name}.json"), items)
    for r in ev.results:  # the diagnostic (ablated-audio) twins, at each method's chosen configuration
        for e, p in zip(ev.diag_ex, [] if r.diag_pred is None else r.diag_pred, strict=False):
            rows.append(
                {
                    "id": e.id,
                    "method": r.name,
                    "alpha": r.params.get("alpha"),
                    "label": LETTERS[int(p)],
                    "choice": e.choices[int(p)],
                    "correct": int(p) in e.correct,
                    "domain": e.domain,
                    "diagnostic": True,
                }
            )
    write_jsonl(out / PREDICTIONS, rows)
    return official


def _write_report(out: Path, summary: dict[str, Any], ev: Evaluator, disc: Any) -> None:
    from .report import markdown, plots

    name = summary["model"]["spec"]["name"] + (
        " (RANDOM WEIGHTS)" if summary["model"]["random_weights"] else ""
    )
    plots.alpha_curves(summary["table"], out / "alpha_curve.png", f"{name}: accuracy vs alpha on calibration")
    plots.domain_bars(summary["table"], out / "domains.png", f"{name}: accuracy by domain (evaluation split)")
    plots.tradeoff(summary["table"], out / "tradeoff.png", f"{name}: misleading vs consistent accuracy")
    summary["verdict"] = markdown.verdict(summary["table"])  # summary.json and stdout end with it
    write_text(out / REPORT, markdown.render(summary))
