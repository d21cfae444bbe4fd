"""Ask a model your own question about your own clip, with and without head-guided steering.

    python examples/steer_question.py --model tiny --clip dog.wav -q "What animal is heard?" \
        -c "a dog" -c "a cat" -c "a cow" --heads heads/ --alpha 4

The steering direction is the clip's own: v(x) = Σ_l w_l (h_t^l(x) − h_t^l(x⁰)) over the layers of the
specialist heads (`--heads`: a folder saved by find_heads.py or a `steer-audio discover` run; without it,
heads are found on a small synthetic set first). It is applied inside a trace opened here, and around
`generate` for a free-text answer.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import steer_audio as sa


def main(argv: list[str] | None = None) -> dict[str, str]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--clip", type=Path, help="a 16 kHz audio file (default: a synthetic tone)")
    ap.add_argument("-q", "--question", default="How high is the tone?")
    ap.add_argument("-c", "--choice", action="append", help="one option (repeat the flag)")
    ap.add_argument("--heads", type=Path, help="head scores saved by find_heads.py or a discover run")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=4.0)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)
    choices = args.choice or ["low", "medium", "high", "very high"]

    model = sa.load_model(args.model, device=args.device)
    demo = None
    if args.clip is None or args.heads is None:
        from steer_audio.data.demo import write_demo

        demo = sa.load_examples(write_demo(Path(tempfile.mkdtemp(prefix="steer-audio-demo-")), n=16))
    clip = args.clip or demo[0].audio_path  # type: ignore[index]
    heads = (
        sa.HeadScores.load(args.heads)
        if args.heads
        else sa.find_heads(sa.capture_examples(model, demo), k=args.k)
    )

    ex = sa.make_example(clip, args.question, choices, id="question")
    mine = sa.capture_examples(model, [ex])  # this clip's audio pass and its silence pass
    steer = sa.head_guided(mine, heads, alpha=args.alpha)

    # the user's own nnsight trace, with the steering edited in
    ev = model.envoys()
    with model.trace(ex):
        steer.edit(model)
        logits = ev.lm_head.output[:, -1].save()
    cand = mine["cand"][0, : len(choices)]
    steered = logits[0].float()[cand]
    plain = mine.logits()[0, : len(choices)]
    out = {"unsteered": choices[int(plain.argmax())], "steered": choices[int(steered.argmax())]}

    # free text: steer every decoding step of HF generate (the last position of each forward)
    inputs = {k: v for k, v in model.inputs(ex).items() if k != "position_ids"}
    tok = model.processor.tokenizer
    n = inputs["input_ids"].shape[1]
    gen = dict(max_new_tokens=args.max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        out["generated"] = tok.decode(model.module.generate(**inputs, **gen)[0, n:], skip_special_tokens=True)
        with steer.apply(model):
            ids = model.module.generate(**inputs, **gen)[0, n:]
        out["generated_steered"] = tok.decode(ids, skip_special_tokens=True)

    print(
        f"{args.model}{' (RANDOM WEIGHTS)' if model.random_weights else ''}, alpha = {args.alpha}, "
        f"layers {list(steer.layers)} weights {[round(w, 3) for w in steer.weights]}"
    )
    for k, v in out.items():
        print(f"  {k:<18} {v!r}")
    return out


if __name__ == "__main__":
    main()
