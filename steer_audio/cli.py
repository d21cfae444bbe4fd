"""The `steer-audio` command line: one command per stage plus `run` for a whole recipe.

stdout carries results and the run directory; logs and progress bars go to stderr."""

from __future__ import annotations

import datetime as _dt
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .errors import SteerAudioError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Find audio-specialist heads and steer audio-language models to listen.",
)
log = logging.getLogger("steer_audio")

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
DEFAULT_MODEL = "mini"
DEFAULT_DATA = "listen-bench"
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
        "--negative", help="silence | floor (white noise at the clip's own noise floor) | noise | shuffle | drop (no audio at all; not position-aligned)"
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
        "(the model's own forward, what a remote server runs)",
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


def _check_options(kw: dict[str, Any]) -> None:
    """Every option check that needs no model: before anything is loaded, captured or written."""
    from . import cli_checks as cc

    cfg = kw.get("cfg")
    cc.check_k(kw["k"], cfg.k_sweep if cfg is not None else ())
    cc.check_ranking(kw["ranking"])
    cc.check_dtype(kw["dtype"])
    cc.check_device(kw["device"])
    cc.check_positive("--limit", kw["limit"])
    cc.check_positive("--batch-size", kw["batch_size"])
    cc.check_positive("--devices", kw["devices"])
    cc.check_calib(kw["calib"], kw["calib_fraction"])
    _check_model_ready(kw["model"])


def _execute(stage: str, **kw) -> None:
    from .evaluate.run import EvalConfig
    from .pipeline import Plan, execute
    from .progress import setup_logging

    setup_logging()
    try:
        from .models.registry import resolve_spec

        _check_options(kw)
        resolve_spec(kw["model"])  # an unknown model fails before anything is written
        out = kw.pop("out") or _default_out(stage, kw["model"])
        plan = Plan(
            data=_data(kw.pop("data"), out),
            audio_root=kw.pop("audio_root"),
            calib=kw.pop("calib"),
            calib_fraction=kw.pop("calib_fraction"),
            seed=kw["seed"],
            limit=kw.pop("limit"),
        )
        cfg = kw.pop("cfg", None) or EvalConfig()
        cfg.k, cfg.ranking, cfg.seed = kw.pop("k"), kw.pop("ranking"), kw.pop("seed")
        target = _remote(kw.pop("remote"))
        from .capture.backends import using

        ray, backend = kw.pop("ray"), kw.pop("backend")
        with using("ray" if ray else backend, ray, replicas=kw["devices"]):
            summary = execute(stage, kw.pop("model"), plan, out, cfg, remote=target, **kw)
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
    model: Model = DEFAULT_MODEL,
    data: Data = DEFAULT_DATA,
    audio_root: AudioRoot = None,
    calib: Calib = None,
    calib_fraction: CalibFraction = None,
    seed: Seed = 0,
    k: K = 20,
    ranking: Ranking = "abs",
    out: Out = None,
    batch_size: Batch = 8,
    negative: Negative = "silence",
    device: Device = None,
    dtype: Dtype = None,
    remote: Remote = None,
    strict: Strict = False,
    limit: Limit = None,
    revision: Revision = None,
    devices: Devices = 1,
    backend: Backend = "processes",
    ray: RayAddress = None,
    audio_encoder: AudioEncoder = "clip-length",
    draws: Annotated[int, typer.Option(help="random-head draws for the AUC check")] = 100,
) -> None:
    """Capture both passes, score every head, pick the specialists and validate the listening score."""
    from .evaluate.run import EvalConfig

    cfg = EvalConfig(methods=["baseline"], draws=draws)
    _execute(
        "discover",
        model=model,
        data=data,
        audio_root=audio_root,
        calib=calib,
        calib_fraction=calib_fraction,
        seed=seed,
        k=k,
        ranking=ranking,
        out=out,
        batch_size=batch_size,
        negative=negative,
        device=device,
        dtype=dtype,
        remote=remote,
        strict=strict,
        limit=limit,
        revision=revision,
        devices=devices,
        backend=backend,
        ray=ray,
        audio_encoder=audio_encoder,
        cfg=cfg,
    )


def _method_help() -> str:
    """`--method` help from the method registry (steer/methods/registry.py; it imports no torch)."""
    from .steer.methods import cli_help

    return cli_help()


def _parse_alpha(alpha: str) -> float | None:
    from .cli_checks import check_alphas

    if alpha == "auto":
        return None
    try:
        a = float(alpha)
    except ValueError:
        raise SteerAudioError(f"--alpha must be a number or 'auto', got {alpha!r}") from None
    check_alphas("--alpha", [a])
    return a


@app.command()
def evaluate(
    model: Model = DEFAULT_MODEL,
    data: Data = DEFAULT_DATA,
    audio_root: AudioRoot = None,
    calib: Calib = None,
    calib_fraction: CalibFraction = None,
    seed: Seed = 0,
    k: K = 20,
    ranking: Ranking = "abs",
    out: Out = None,
    batch_size: Batch = 8,
    negative: Negative = "silence",
    device: Device = None,
    dtype: Dtype = None,
    remote: Remote = None,
    strict: Strict = False,
    limit: Limit = None,
    revision: Revision = None,
    devices: Devices = 1,
    backend: Backend = "processes",
    ray: RayAddress = None,
    audio_encoder: AudioEncoder = "clip-length",
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method",
            help=_method_help(),
        ),
    ] = None,
    heads: Annotated[
        str, typer.Option(help="specialist | random (the head set of head-guided)")
    ] = "specialist",
    alpha: Annotated[
        str, typer.Option(help="a value, or 'auto' = chosen on calibration over --grid")
    ] = "auto",
    grid: Annotated[
        str, typer.Option(help="comma-separated alpha grid for 'auto'")
    ] = "0,0.5,1,2,3,4,5,6,7,8,10",
    k_sweep: Annotated[str, typer.Option(help="comma-separated K values for Tables 3-4")] = "10,20,30",
    seeds: Annotated[int, typer.Option(help="random-head seeds for the matched controls")] = 10,
    from_run: Annotated[Path | None, typer.Option("--from", help="reuse this run's capture cache")] = None,
    controls: Annotated[bool, typer.Option(help="direction controls beside head-guided")] = True,
    permute_options: Annotated[
        int,
        typer.Option(
            "--permute-options", help="also score N-1 rotated option orders (position-bias control)"
        ),
    ] = 1,
    protocol: Annotated[str, typer.Option(help=PROTOCOL_HELP)] = "logits",
    max_new_tokens: Annotated[int, typer.Option(help="generate protocol: greedy new tokens at most")] = 32,
    template: Annotated[str, typer.Option(help=TEMPLATE_HELP)] = "model",
) -> None:
    """Every method of Tables 1-4 and Figure 2, alpha chosen on calibration; report + predictions."""
    from . import cli_checks as cc
    from .evaluate.run import DEFAULT_GRID, DEFAULT_METHODS, EvalConfig

    try:
        g = cc.parse_numbers("--grid", grid) if grid else list(DEFAULT_GRID)
        cc.check_alphas("--grid", g)
        ks = [int(x) for x in cc.parse_numbers("--k-sweep", k_sweep, int)] if k_sweep else []
        fixed_alpha = _parse_alpha(alpha)
    except SteerAudioError as e:
        _fail(e)
        return
    try:
        gen = _generate_config(protocol, template, max_new_tokens, batch_size)
    except SteerAudioError as e:
        _fail(e)
        return
    methods = list(method) if method else list(DEFAULT_METHODS)
    if "baseline" not in methods:
        methods.insert(0, "baseline")
    cfg = EvalConfig(
        methods=methods,
        heads=heads,
        alpha=fixed_alpha,
        grid=g,
        k_sweep=ks,
        seeds=seeds,
        controls=controls,
        batch_size=batch_size,
    )
    _execute(
        "evaluate",
        model=model,
        data=data,
        audio_root=audio_root,
        calib=calib,
        calib_fraction=calib_fraction,
        seed=seed,
        k=k,
        ranking=ranking,
        out=out,
        batch_size=batch_size,
        negative=negative,
        device=device,
        dtype=dtype,
        remote=remote,
        strict=strict,
        limit=limit,
        revision=revision,
        devices=devices,
        backend=backend,
        ray=ray,
        audio_encoder=audio_encoder,
        cfg=cfg,
        from_run=from_run,
        permute_options=permute_options,
        generate=gen,
    )


PROTOCOL_HELP = (
    "logits (the paper's: next-token logit of each option) | generate (also greedy decoding, steered at "
    "every new token, scored by MMAU's string match; both reported side by side)"
)
TEMPLATE_HELP = "generate protocol's prompt: model (the run's own) | r1-aqa | mmau-choices"


def _generate_config(protocol: str, template: str, max_new_tokens: int, batch_size: int) -> Any:
    from .evaluate.generate_protocol import PROTOCOLS, GenerateConfig

    if protocol not in PROTOCOLS:
        raise SteerAudioError(f"unknown --protocol {protocol!r}: use {' | '.join(PROTOCOLS)}")
    if protocol == "logits":
        return None
    gen = GenerateConfig(template=template, max_new_tokens=max_new_tokens, batch_size=batch_size)
    gen.validate()
    return gen


@app.command()
def run(
    recipe: Annotated[Path, typer.Argument(help="a recipes/*.toml file")],
    out: Out = None,
    audio_root: AudioRoot = None,
    limit: Limit = None,
) -> None:
    """Run a whole recipe (one published table or figure)."""
    from .recipes import load_recipe

    try:
        r = load_recipe(recipe)
    except SteerAudioError as e:
        _fail(e)
        return
    kw = r.cli_kwargs(out or _default_out(r.name, r.model))
    if audio_root is not None:
        kw["audio_root"] = audio_root
    if limit is not None:
        kw["limit"] = limit
    evaluate(**kw)


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
