"""Compare negatives: the same examples with matched silence, noise and a shuffled clip as x⁰.

    python examples/compare_negatives.py --model tiny --data my_items.json --alpha 0,1,2,4

Per negative: how often the negative pass changes the answer (flips), the mean norm of the head-guided
direction v(x), and accuracy under head-guided steering for each α, all scored from the capture (no
forward pass per α). The head scores r come from the audio pass, so they are the same for every negative.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import steer_audio as sa

NEGATIVES = ("silence", "noise", "shuffle")


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--data", type=Path, help="MMAU-format JSON (default: a synthetic demo set)")
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--alpha", default="0,1,2,4")
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)
    alphas = [float(a) for a in args.alpha.split(",")]

    if args.data is None:
        from steer_audio.data.demo import write_demo

        args.data = write_demo(Path(tempfile.mkdtemp(prefix="steer-audio-demo-")), n=args.limit)
    examples = sa.load_examples(args.data)[: args.limit]
    model = sa.load_model(args.model, device=args.device)

    rows: dict[str, dict[str, float]] = {}
    heads = None
    for neg in NEGATIVES:
        cap = sa.capture_examples(model, examples, negative=neg)
        heads = heads or sa.find_heads(cap, k=args.k)
        flips = (cap.predictions() != cap["logits_n"].argmax(-1).numpy()).mean()
        v = sa.head_guided(cap, heads)
        row = {"flip_rate": float(flips), "mean_norm_v": float(v.v.norm(dim=-1).mean())}
        row |= {f"acc@{a:g}": cap.accuracy(v.with_alpha(a)) for a in alphas}  # type: ignore[arg-type]
        rows[neg] = row

    name = args.model + (" (RANDOM WEIGHTS)" if model.random_weights else "")
    print(f"{name}: {len(examples)} examples, K = {args.k}, head-guided steering")
    cols = list(next(iter(rows.values())))
    print("negative  " + "  ".join(f"{c:>11}" for c in cols))
    for neg, row in rows.items():
        print(f"{neg:<9} " + "  ".join(f"{row[c]:>11.3f}" for c in cols))
    return rows


if __name__ == "__main__":
    main()
