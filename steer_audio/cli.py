"""The `steer-audio` command line: one command per stage plus `run` for a whole recipe.

stdout carries results and the run directory; logs and progress bars go to stderr."""

from __future__ import annotations

import datetime as _dt
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .config import RunConfig, format_numbers, parse_alpha
from .errors import SteerAudioError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Find audio-specialist heads and steer audio-language models to listen.",
)
log = logging.getLogger("steer_audio")
#: every option's default is the run configuration's (config.py), written there once
_D = RunConfig()

# -- shared options, defined once ----------------------------------------------------------------------------
Model = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="mini (default: the embedded real model) | tiny (RANDOM WEIGHTS, tests) | qwen2-audio | r1-aqa "
        "| a HF id | a local folder",
    ),
]
Data = Annotated[
    str,
    typer.Option(
        "--data",
        help="listen-bench (default: mini's benchmark) | mmau | mmau-v1 | demo | an MMAU-format JSON "
        "| a local datasets copy",
    ),
]
#: the defaults a new user gets: the embedded real model and its benchmark (both made by scripts/setup_mini.sh)
DEFAULT_MODEL = _D.model
DEFAULT_DATA = _D.data
AudioRoot = Annotated[
    Path | None, typer.Option("--audio-root", help="folder holding the clips (audio_id is resolved under it)")
]
Calib = Annotated[
    str | None, typer.Option("--calib", help="a separate labelled MMAU-format file used as D_cal")
]
CalibFraction = Annotated[
    float | None,
    typer.Option("--calib-fraction", help="carve this seeded, domain-stratified part of --data as D_cal"),
]
Seed = Annotated[
    int, typer.Option("--seed", help="seed for the split carve, negatives and random-head draws")
]
K = Annotated[int, typer.Option("--k", help="number of specialist heads")]
Out = Annotated[Path | None, typer.Option("--out", help="run directory (rerun with the same one to resume)")]
Batch = Annotated[
    int, typer.Option("--batch-size", help="examples per trace (each gives an audio and a negative row)")
]
Negative = Annotated[
    str,
    typer.Option(
        "--negative",
        help="silence | floor (white noise at the clip's own noise floor) | noise | shuffle | drop (no audio at all; not position-aligned)",
    ),
]
Device = Annotated[
    str | None, typer.Option("--device", help="cpu | cuda | cuda:N (default: cuda if available)")
]
Dtype = Annotated[
    str | None,
    typer.Option("--dtype", help="float32 | bfloat16 | float16 (default: bf16 on GPU, fp32 on CPU)"),
]
Remote = Annotated[
    str | None,
    typer.Option(
        "--remote",
        envvar="NDIF_HOST",
        help="NDIF server URL (or 'local' for nnsight's in-process round trip)",
    ),
]
Strict = Annotated[bool, typer.Option("--strict", help="stop at the first missing or unreadable audio file")]
Limit = Annotated[
    int | None, typer.Option("--limit", help="use at most N calibration and N evaluation items (smoke runs)")
]
Ranking = Annotated[str, typer.Option("--ranking", help="abs (by |r|, default) | signed")]
Revision = Annotated[str | None, typer.Option("--revision", help="hub revision of the model")]
Devices = Annotated[
    int, typer.Option("--devices", help="data-parallel capture over N devices (one replica each)")
]
Backend = Annotated[str, typer.Option("--backend", help="who runs the --devices replicas: processes | ray")]
RayAddress = Annotated[
    str | None, typer.Option("--ray", help="Ray cluster for --devices (auto | HOST:PORT): --backend ray")
]
AudioEncoder = Annotated[
    str,
    typer.Option(
        "--audio-encoder",
        help="clip-length (the encoder on each clip's own length, same numbers; default) | full-window "
        "(the model's own forward on features computed on the host: what a remote server runs, bit for bit)",
    ),
]

CaptureLevers = Annotated[
    str,
    typer.Option(
        "--capture-levers",
        help="capture speed levers (capture/fast.py): auto (on a GPU the bit-identical ones: no_sync, "
        "encoder_graph, clip_features, features=launch; default) | none | a comma list, e.g. "
        "no_sync,liger (liger and compile change float rounding)",
    ),
]


def _default_out(stage: str, model: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stage}-{Path(model).name}-{stamp}"


def _data(data: str, out: Path) -> str:
    from .data.named import resolve

    return resolve(data, out)


def _fail(e: Exception) -> None:
    """One plain line on stderr (no rich markup, no wrapping at the terminal width) and exit status 1."""
    msg = " ".join(str(e).split())
    try:
        sys.stderr.write(f"error: {msg}\n")
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    raise typer.Exit(1)


def _quiet_broken_pipe() -> None:
    """The reader of stdout went away (`... | head -1`): stop writing, quietly, with status 0."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise typer.Exit(0)


def _stdout_console() -> Any:
    """stdout for results: no markup in data, no wrapping when piped (a wide fixed width, no colour)."""
    from rich.console import Console

    class _Stdout(Console):
        def on_broken_pipe(self) -> None:  # rich's own handler exits with status 1; ours is quiet (0)
            raise BrokenPipeError

    return _Stdout(file=sys.stdout, width=None if sys.stdout.isatty() else 10_000, highlight=False)


def _check_model_ready(model: str) -> None:
    """The default model is usable only after set-up: say what to run (the first line the user sees)."""
    if model != "mini":
        return
    from .data.named import SETUP_HINT
    from .models.mini.assemble import default_cache_dir, is_set_up

    if not is_set_up():
        raise SteerAudioError(
            f"the embedded model `mini` (the default --model) is not set up at {default_cache_dir()}: "
            f"{SETUP_HINT} (or pass --model tiny for the random-weight test model)"
        )


def _print_table(summary: dict) -> None:
    try:
        _print_summary(summary)
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_broken_pipe()


def _print_summary(summary: dict) -> None:
    """stdout: the run directory (first line), a RANDOM WEIGHTS line for random models, then the tables."""
    from rich.table import Table

    con = _stdout_console()
    sys.stdout.write(f"{summary['run_dir']}\n")
    random = summary["model"]["random_weights"]
    name = summary["model"]["spec"]["name"]
    if random:
        sys.stdout.write(
            f"RANDOM WEIGHTS: {name} is a randomly initialised test model; its numbers are noise\n"
        )
    if "table" in summary:
        fixed = summary.get("config", {}).get("alpha")
        how = (
            "alpha chosen on calibration"
            if fixed is None
            else f"alpha fixed by --alpha {fixed} (user-chosen)"
        )
        # titles as plain lines: rich wraps a table's title to the table's width
        sys.stdout.write(f"{name}{' (RANDOM WEIGHTS)' if random else ''}: evaluation split, {how}\n")
        t = Table()
        for c in ("method", "accuracy %", "gain pp", "McNemar p", "alpha", "layer/K"):
            t.add_column(c)
        for r in summary["table"]:
            mc = r.get("mcnemar_vs_baseline")
            t.add_row(
                r["method"],
                f"{100 * r['accuracy']:.2f}",
                f"{r.get('gain_pp', 0):+.2f}",
                f"{mc['p_value']:.3g}" if mc else "",
                str(r.get("alpha", "")),
                str(r.get("layer", r.get("K", ""))),
            )
        con.print(t)
    d = summary["discovery"]
    sys.stdout.write(f"top specialists (K={d['k']}, ranking {d['ranking']})\n")
    t = Table()
    t.add_column("rank")
    t.add_column("head")
    for i, h in enumerate(d["heads"][:10]):
        t.add_row(str(i + 1), h)
    con.print(t)
    from .report.markdown import fmt

    ci, cf = d["check_i_auc"], d["check_ii_flips"]
    con.print(
        f"listening score AUC {fmt(ci['auc_specialists'])} vs random heads {fmt(ci['auc_random_mean'])} "
        f"(percentile {fmt(ci['percentile_vs_random'], '.0f')}); mean score on flips {fmt(cf['mean_flip'])} "
        f"vs non-flips {fmt(cf['mean_nonflip'])} (Mann-Whitney p={fmt(cf['p_greater'], '.3g')})"
    )
    sys.stdout.write(f"run directory: {summary['run_dir']}\n")
    if "verdict" in summary:  # the last line: did steering beat the baseline and the random-head control
        sys.stdout.write(f"{summary['verdict']}\n")


def _remote(value: str | None) -> bool | str:
    """--remote / NDIF_HOST / NDIF_API_KEY -> nnsight's `remote=` value; waits until a server is ready."""
    if not value:
        return False
    from .remote.client import configure, resolve_remote, wait_until_ready

    logging.getLogger("httpx").setLevel(logging.WARNING)
    target = resolve_remote(value)
    configure(target)
    if target.is_server:
        wait_until_ready(target, refused_grace=2.0)  # a refused port fails fast; the state is logged
    return target.trace_arg


def _execute(stage: str, cfg: RunConfig, out: Path | None) -> None:
    """Check `cfg` (no model needed), then run it through the pipeline and print its tables."""
    from .pipeline import execute
    from .progress import setup_logging

    setup_logging()
    try:
        from .models.registry import resolve_spec

        cfg.check()
        _check_model_ready(cfg.model)
        resolve_spec(cfg.model)  # an unknown model fails before anything is written
        summary = execute(stage, cfg, out or _default_out(stage, cfg.model), remote=_remote(cfg.remote))
    except SteerAudioError as e:
        _fail(e)
        return
    _print_table(summary)
    if "generate" in summary:
        _print_generate(summary["generate"])


def _print_generate(gen: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title="generate protocol (greedy, MMAU string match): evaluation split")
    for c in ("method", "generate %", "logits %", "McNemar p (vs logits)", "empty", "n"):
        t.add_column(c)
    for r in gen["table"]:
        mc = r.get("mcnemar_vs_logits")
        la = r.get("logits_accuracy")
        t.add_row(
            r["method"],
            f"{100 * r['accuracy']:.2f}",
            f"{100 * la:.2f}" if la is not None else "",
            f"{mc['p_value']:.3g}" if mc else "",
            str(r["empty_outputs"]),
            str(r["n"]),
        )
    _stdout_console().print(t)


@app.command()
def discover(
    model: Model = _D.model,
    data: Data = _D.data,
    audio_root: AudioRoot = None,
    calib: Calib = None,
    calib_fraction: CalibFraction = None,
    seed: Seed = _D.seed,
    k: K = _D.k,
    ranking: Ranking = _D.ranking,
    out: Out = None,
    batch_size: Batch = _D.batch_size,
    negative: Negative = _D.negative,
    device: Device = None,
    dtype: Dtype = None,
    remote: Remote = None,
    strict: Strict = _D.strict,
    limit: Limit = None,
    revision: Revision = None,
    devices: Devices = _D.devices,
    backend: Backend = _D.backend,
    ray: RayAddress = None,
    audio_encoder: AudioEncoder = _D.audio_encoder,
    capture_levers: CaptureLevers = _D.capture_levers,
    draws: Annotated[int, typer.Option(help="random-head draws for the AUC check")] = _D.draws,
) -> None:
    """Capture both passes, score every head, pick the specialists and validate the listening score."""
    cfg = RunConfig(**{k: v for k, v in locals().items() if k != "out"}, methods=["baseline"])
    _execute("discover", cfg, out)


def _method_help() -> str:
    """`--method` help from the method registry (steer/methods/registry.py; it imports no torch)."""
    from .steer.methods import cli_help

    return cli_help()


@app.command()
def evaluate(
    model: Model = _D.model,
    data: Data = _D.data,
    audio_root: AudioRoot = None,
    calib: Calib = None,
    calib_fraction: CalibFraction = None,
    seed: Seed = _D.seed,
    k: K = _D.k,
    ranking: Ranking = _D.ranking,
    out: Out = None,
    batch_size: Batch = _D.batch_size,
    negative: Negative = _D.negative,
    device: Device = None,
    dtype: Dtype = None,
    remote: Remote = None,
    strict: Strict = _D.strict,
    limit: Limit = None,
    revision: Revision = None,
    devices: Devices = _D.devices,
    backend: Backend = _D.backend,
    ray: RayAddress = None,
    audio_encoder: AudioEncoder = _D.audio_encoder,
    capture_levers: CaptureLevers = _D.capture_levers,
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method",
            help=_method_help(),
        ),
    ] = None,
    heads: Annotated[str, typer.Option(help="specialist | random (the head set of head-guided)")] = _D.heads,
    alpha: Annotated[
        str, typer.Option(help="a value, or 'auto' = chosen on calibration over --grid")
    ] = "auto",
    grid: Annotated[str, typer.Option(help="comma-separated alpha grid for 'auto'")] = format_numbers(
        _D.grid
    ),
    k_sweep: Annotated[str, typer.Option(help="comma-separated K values for Tables 3-4")] = format_numbers(
        _D.k_sweep
    ),
    seeds: Annotated[int, typer.Option(help="random-head seeds for the matched controls")] = _D.seeds,
    from_run: Annotated[Path | None, typer.Option("--from", help="reuse this run's capture cache")] = None,
    controls: Annotated[bool, typer.Option(help="direction controls beside head-guided")] = _D.controls,
    permute_options: Annotated[
        int,
        typer.Option(
            "--permute-options", help="also score N-1 rotated option orders (position-bias control)"
        ),
    ] = _D.permute_options,
    protocol: Annotated[str, typer.Option(help=PROTOCOL_HELP)] = _D.protocol,
    max_new_tokens: Annotated[
        int, typer.Option(help="generate protocol: greedy new tokens at most")
    ] = _D.max_new_tokens,
    template: Annotated[str, typer.Option(help=TEMPLATE_HELP)] = _D.template,
) -> None:
    """Every method of Tables 1-4 and Figure 2, alpha chosen on calibration; report + predictions."""
    try:
        cfg = evaluate_config(**{k: v for k, v in locals().items() if k != "out"})
    except SteerAudioError as e:
        _fail(e)
        return
    _execute("evaluate", cfg, out)


def evaluate_config(
    *, method: list[str] | None, alpha: str, grid: str, k_sweep: str, **options: Any
) -> RunConfig:
    """`evaluate`'s options (the list options as the command line writes them) -> the run configuration."""
    from . import cli_checks as cc

    g = cc.parse_numbers("--grid", grid) if grid else list(_D.grid)
    cc.check_alphas("--grid", g)
    ks = [int(x) for x in cc.parse_numbers("--k-sweep", k_sweep, int)] if k_sweep else []
    return RunConfig(
        **options,
        methods=list(method) if method else list(_D.methods),
        alpha=parse_alpha(alpha),
        grid=g,
        k_sweep=ks,
    )


PROTOCOL_HELP = (
    "logits (the paper's: next-token logit of each option) | generate (also greedy decoding, steered at "
    "every new token, scored by MMAU's string match; both reported side by side)"
)
TEMPLATE_HELP = "generate protocol's prompt: model (the run's own) | r1-aqa | mmau-choices"


@app.command()
def run(
    recipe: Annotated[Path, typer.Argument(help="a recipes/*.toml file")],
    out: Out = None,
    audio_root: AudioRoot = None,
    limit: Limit = None,
) -> None:
    """Run a whole recipe (one published table or figure)."""
    from dataclasses import replace

    from .recipes import load_recipe

    try:
        r = load_recipe(recipe)
        cfg = r.run_config()
    except SteerAudioError as e:
        _fail(e)
        return
    if audio_root is not None:
        cfg = replace(cfg, audio_root=audio_root)
    if limit is not None:
        cfg = replace(cfg, limit=limit)
    _execute("evaluate", cfg, out or _default_out(r.name, r.model))


@app.command()
def listen(
    clip: Annotated[Path, typer.Argument(help="an audio file")],
    question: Annotated[str, typer.Option("--question", "-q")],
    choices: Annotated[
        list[str],
        typer.Option(
            "--choices",
            "-c",
            help="comma-separated options (-c 'a dog,a cat'), or -c repeated once per option "
            "(each taken verbatim, so an option may contain commas)",
        ),
    ],
    model: Model = DEFAULT_MODEL,
    from_run: Annotated[
        Path | None, typer.Option("--from", help="a discover/evaluate run of this model")
    ] = None,
    negative: Negative = "silence",
    device: Device = None,
    dtype: Dtype = None,
    remote: Remote = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    generate: Annotated[
        bool, typer.Option("--generate", help="also print free-form answers, unsteered and steered (greedy)")
    ] = False,
    max_new_tokens: Annotated[int, typer.Option(help="--generate: new tokens at most")] = 32,
) -> None:
    """One example: prediction with and without steering, listening score, does silence change it."""
    from . import cli_checks as cc
    from .listen import listen as run_listen
    from .progress import setup_logging

    setup_logging()
    try:
        opts = cc.split_choices(choices)
        cc.check_dtype(dtype)
        cc.check_device(device)
        if from_run is not None and not (from_run / "capture").is_dir():
            raise SteerAudioError(
                f"--from {from_run}: not a run directory (no {from_run / 'capture'}); "
                "give the --out folder of a discover or evaluate run of this model"
            )
        _check_model_ready(model)
        cc.check_positive("--max-new-tokens", max_new_tokens)
        res = run_listen(
            model,
            clip,
            question,
            opts,
            from_run,
            negative,
            device,
            dtype,
            _remote(remote),
            generate=max_new_tokens if generate else None,
        )
    except SteerAudioError as e:
        _fail(e)
        return
    try:
        _print_listen(res, clip, as_json)
    except BrokenPipeError:
        _quiet_broken_pipe()


def _print_listen(res: dict[str, Any], clip: Path, as_json: bool) -> None:
    import json

    from rich.markup import escape
    from rich.table import Table

    if as_json:
        typer.echo(json.dumps(res, indent=1))
        return
    if res["random_weights"]:
        typer.echo(
            f"RANDOM WEIGHTS: {res['model']} is a randomly initialised test model; its answer is noise"
        )
    t = Table(title=escape(f"{res['model']}{' (RANDOM WEIGHTS)' if res['random_weights'] else ''}: {clip}"))
    t.add_column("")
    t.add_column("answer")
    t.add_row("prediction", escape(f"({res['prediction']['label']}) {res['prediction']['choice']}"))
    t.add_row(
        f"with {res['negative']} instead",
        escape(f"({res['prediction_under_negative']['label']}) {res['prediction_under_negative']['choice']}"),
    )
    if "steered_prediction" in res:
        sp = res["steered_prediction"]
        t.add_row(f"head-guided steering, alpha={res['alpha']}", escape(f"({sp['label']}) {sp['choice']}"))
    if "generated" in res:
        t.add_row("generated (unsteered)", escape(repr(res["generated"])))
    if "steered_generated" in res:
        t.add_row(f"generated, head-guided alpha={res['alpha']}", escape(repr(res["steered_generated"])))
    if "listening_score" in res:
        t.add_row(
            "listening score",
            f"{res['listening_score']:.4f} (percentile {res['listening_percentile_vs_calibration']:.0f} of calibration)",
        )
    _stdout_console().print(t)
    if "note" in res:
        typer.echo(res["note"])
    sys.stdout.flush()


def _register_extras() -> None:
    try:
        from . import cli_mini
    except ImportError:
        return
    cli_mini.register(app)


_register_extras()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
