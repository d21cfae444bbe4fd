"""The `steer-audio` command line: one command per stage plus `run` for a whole recipe.

stdout carries results and the run directory; logs and progress bars go to stderr."""

from __future__ import annotations

import datetime as _dt
import logging
import sys
from pathlib import Path
from typing import Annotated

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
    str, typer.Option("--model", "-m", help="qwen2-audio | r1-aqa | mini | tiny | a HF id | a local folder")
]
Data = Annotated[
    str, typer.Option("--data", help="mmau | mmau-v1 | demo | an MMAU-format JSON | a local datasets copy")
]
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
        "--negative", help="silence | noise | shuffle | drop (no audio at all; not position-aligned)"
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


def _default_out(stage: str, model: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stage}-{Path(model).name}-{stamp}"


def _data(data: str, out: Path) -> str:
    if data == "demo":
        from .data.demo import write_demo

        return str(write_demo(out / "demo-data"))
    return data


def _fail(e: Exception) -> None:
    from .progress import stderr

    stderr.print(f"[bold red]error:[/] {e}")
    raise typer.Exit(1)


def _print_table(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(file=sys.stdout)
    random = summary["model"]["random_weights"]
    if "table" in summary:
        t = Table(
            title=f"{summary['model']['spec']['name']}{' (RANDOM WEIGHTS)' if random else ''}: evaluation split, alpha chosen on calibration"
        )
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
    t = Table(title=f"top specialists (K={d['k']}, ranking {d['ranking']})")
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
    con.print(f"run directory: {summary['run_dir']}")


def _remote(value: str | None) -> bool | str:
    """--remote / NDIF_HOST / NDIF_API_KEY -> nnsight's `remote=` value; waits until a server is ready."""
    if not value:
        return False
    from .remote.client import configure, resolve_remote, wait_until_ready

    logging.getLogger("httpx").setLevel(logging.WARNING)
    target = resolve_remote(value)
    configure(target)
    if target.is_server:
        wait_until_ready(target)
    return target.trace_arg


def _execute(stage: str, **kw) -> None:
    from .evaluate.run import EvalConfig
    from .pipeline import Plan, execute
    from .progress import setup_logging

    setup_logging()
    try:
        from .models.registry import resolve_spec

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
    model: Model = "tiny",
    data: Data = "demo",
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
        cfg=cfg,
    )


def _method_help() -> str:
    """`--method` help from the method registry (steer/methods/registry.py; it imports no torch)."""
    from .steer.methods import cli_help

    return cli_help()


def _parse_alpha(alpha: str) -> float | None:
    if alpha == "auto":
        return None
    try:
        return float(alpha)
    except ValueError:
        raise typer.BadParameter(f"--alpha must be a number or 'auto', got {alpha!r}") from None


@app.command()
def evaluate(
    model: Model = "tiny",
    data: Data = "demo",
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
        alpha=_parse_alpha(alpha),
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
        cfg=cfg,
        from_run=from_run,
        permute_options=permute_options,
    )


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
def listen(
    clip: Annotated[Path, typer.Argument(help="an audio file")],
    question: Annotated[str, typer.Option("--question", "-q")],
    choices: Annotated[str, typer.Option("--choices", "-c", help="comma-separated options, e.g. A,B,C,D")],
    model: Model = "tiny",
    from_run: Annotated[
        Path | None, typer.Option("--from", help="a discover/evaluate run of this model")
    ] = None,
    negative: Negative = "silence",
    device: Device = None,
    dtype: Dtype = None,
    remote: Remote = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """One example: prediction with and without steering, listening score, does silence change it."""
    import json

    from rich.console import Console
    from rich.table import Table

    from .listen import listen as run_listen
    from .progress import setup_logging

    setup_logging()
    try:
        res = run_listen(
            model, clip, question, choices.split(","), from_run, negative, device, dtype, _remote(remote)
        )
    except SteerAudioError as e:
        _fail(e)
        return
    if as_json:
        typer.echo(json.dumps(res, indent=1))
        return
    t = Table(title=f"{res['model']}{' (RANDOM WEIGHTS)' if res['random_weights'] else ''}: {clip}")
    t.add_column("")
    t.add_column("answer")
    t.add_row("prediction", f"({res['prediction']['label']}) {res['prediction']['choice']}")
    t.add_row(
        f"with {res['negative']} instead",
        f"({res['prediction_under_negative']['label']}) {res['prediction_under_negative']['choice']}",
    )
    if "steered_prediction" in res:
        sp = res["steered_prediction"]
        t.add_row(f"head-guided steering, alpha={res['alpha']}", f"({sp['label']}) {sp['choice']}")
    if "listening_score" in res:
        t.add_row(
            "listening score",
            f"{res['listening_score']:.4f} (percentile {res['listening_percentile_vs_calibration']:.0f} of calibration)",
        )
    Console(file=sys.stdout).print(t)
    if "note" in res:
        typer.echo(res["note"])


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
