"""Find the audio-specialist heads of a model on your own labelled clips.

    python examples/find_heads.py --model tiny --data my_items.json --k 20 --out heads/

`--data` is an MMAU-format JSON file (a list of {"id", "audio_id", "question", "choices", "answer"}); with
no `--data`, a small synthetic pitch set is written and used. In a notebook, build examples from clips
directly with `steer_audio.make_example(path_or_array, question, choices, answer)`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import steer_audio as sa


def main(argv: list[str] | None = None) -> sa.HeadScores:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model", default="tiny", help="registry name, HF id or local folder (tiny: random weights)"
    )
    ap.add_argument("--data", type=Path, help="MMAU-format JSON (default: a synthetic demo set)")
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", type=Path, help="save the head scores here (safetensors + JSON)")
    args = ap.parse_args(argv)

    if args.data is None:
        from steer_audio.data.demo import write_demo

        args.data = write_demo(Path(tempfile.mkdtemp(prefix="steer-audio-demo-")), n=args.limit)
    examples = sa.load_examples(args.data)[: args.limit]
    model = sa.load_model(args.model, device=args.device)

    # one trace per batch: the audio pass and the matched-duration silence pass of every example
    cap = sa.capture_examples(model, examples, negative="silence")
    heads = sa.find_heads(cap, k=args.k)  # r [layers, heads] from this calibration capture alone

    print(
        f"{args.model}{' (RANDOM WEIGHTS)' if model.random_weights else ''}: {len(cap)} examples, "
        f"baseline accuracy {heads.calib_accuracy:.3f}"
    )
    for row in heads.heads.to_json():
        print(f"  {row['rank']:>2}. {row['head']}  r = {row['r']:+.3f}")
    s = sa.listening_score(cap, heads)
    print(f"listening score: mean {np.mean(s):.4f}, min {np.min(s):.4f}, max {np.max(s):.4f}")
    if args.out is not None:
        heads.save(args.out)
        print(f"saved {args.out}")
    return heads


if __name__ == "__main__":
    main()
