"""One example, end to end: the prediction with and without steering, its listening score against the
calibration distribution of a previous run, and whether the negative (silence) changes the answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .capture.cache import CaptureCache, CaptureData
from .capture.inputs import encode
from .capture.run import shard_rows, trace_batch
from .capture.trace import envoys
from .data.audio import load_audio, negative
from .data.mmau import Example
from .data.prompts import LETTERS
from .discover.heads import HeadSet, listening_score
from .errors import SteerAudioError
from .io import HEADS, SPLITS, SUMMARY, read_json
from .models import loaded
from .steer import cached


def listen(
    model: str,
    clip: Path,
    question: str,
    choices: list[str],
    from_run: Path | None = None,
    negative_kind: str = "silence",
    device: str | None = None,
    dtype: str | None = None,
    remote: bool | str = False,
    generate: int | None = None,
) -> dict[str, Any]:
    """`generate`: also decode free-form answers (at most that many new tokens), unsteered and steered."""
    if len(choices) < 2:
        raise SteerAudioError("--choices needs at least two comma-separated options")
    m = loaded.load(model, device=device, dtype=dtype, remote=remote)
    ex = Example(
        id="listen",
        question=question,
        choices=tuple(c.strip() for c in choices),
        answer="",
        correct=frozenset(),
        domain="?",
        audio_path=Path(clip),
    )
    wav = load_audio(ex.audio_path, max_seconds=m.audio_window_s)
    b = encode(m.processor, [ex], [wav], [negative(wav, negative_kind)], m.prompt, m.geom.audio_token_id)
    out = trace_batch(m, envoys(m.lm, m.arch, m.geom, m.name), b)
    n = len(choices)
    la, ln = out["cand_logits"][0].float().cpu(), out["cand_logits"][1].float().cpu()
    res: dict[str, Any] = {
        "model": m.spec["name"],
        "random_weights": m.random_weights,
        "clip": str(clip),
        "prediction": _pred(la, ex),
        "prediction_under_negative": _pred(ln, ex),
        "negative": negative_kind,
    }
    res["negative_changes_answer"] = res["prediction"]["index"] != res["prediction_under_negative"]["index"]
    if generate:  # the audio row of the same prompt, greedy (steer/generate.py)
        from .steer.generate import LayerAdd, generate_texts

        audio_in = {k: v[:1] for k, v in m.model_inputs(b.model_inputs, b.row_keys).items()}
        res["generated"] = generate_texts(m, audio_in, None, generate)[0]
    if from_run is None:
        res["note"] = (
            "pass --from RUN (a discover/evaluate run of this model) for the listening score and steering"
        )
        return res
    run = Path(from_run)
    cache = CaptureCache(run / "capture")
    if cache.index.get("key", {}).get("model") != m.spec:
        raise SteerAudioError(f"--from {run} was made with another model than {m.spec['name']!r}")
    heads = read_json(run / HEADS)
    hs = HeadSet(
        tuple((h["layer"], h["index"]) for h in heads["heads"]), tuple(h["r"] for h in heads["heads"])
    )
    mass = out["mass"][:1].float().cpu().numpy()
    s = float(listening_score(mass, hs)[0])
    calib_ids = read_json(run / SPLITS)["calib_ids"]
    cal = cache.load(calib_ids)
    s_cal = listening_score(cal["mass_a"].numpy(), hs)
    res["listening_score"] = s
    res["listening_percentile_vs_calibration"] = float((s_cal < s).mean() * 100)
    summary = read_json(run / SUMMARY) if (run / SUMMARY).exists() else {}
    alpha = next((r["alpha"] for r in summary.get("table", []) if r["method"] == "head-guided"), None)
    if alpha is None:
        res["note"] = f"{run} has no head-guided alpha (run `evaluate`); steering skipped"
        return res
    one = CaptureData([ex.id], shard_rows(out, b, m.dtype), [n])  # the cache's rows for this one example
    v = cached.head_guided_direction(one, hs)
    steered = cached.score(one, cache.readout(), v, [float(alpha)])[0, 0, :n]
    res["alpha"] = alpha
    res["steered_prediction"] = _pred(steered, ex)
    if generate:  # alpha * v(x) at the last layer at t and at every new token
        res["steered_generated"] = generate_texts(m, audio_in, LayerAdd(v, float(alpha)), generate)[0]
    return res


def _pred(logits: torch.Tensor, ex: Example) -> dict[str, Any]:
    i = int(logits[: len(ex.choices)].argmax())
    return {"index": i, "label": LETTERS[i], "choice": ex.choices[i]}
