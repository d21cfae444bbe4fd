"""Text-only letter-protocol probe of qmini's LM, before any training (no audio, zero projector).

Each item of letter_probe.json is asked four times with the right answer rotated through (A)-(D), in
Qwen's chat template with the paper's letters prompt (steer_audio/data/prompts.py); the prediction is the
label letter with the highest next-token logit. The same items are also scored with the first-token
protocol (option text's first token). Writes a JSON summary.

Usage: python recipes/qmini/letter_probe.py [--out results/qmini/letter_probe.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import torch

from steer_audio.data import prompts as P
from steer_audio.data.mmau import Example
from steer_audio.io import write_text
from steer_audio.models.qmini import assemble as qa

HERE = Path(__file__).resolve().parent


def examples() -> list[Example]:
    items = json.loads((HERE / "letter_probe.json").read_text())["items"]
    out = []
    for i, (q, opts) in enumerate(items):
        for shift in range(4):
            order = [opts[(k - shift) % 4] for k in range(4)]  # right answer (opts[0]) at position `shift`
            out.append(Example(f"q{i}-r{shift}", q, tuple(order), opts[0], frozenset({shift}), "text"))
    return out


def score(model, proc, exs: list[Example], ps: P.PromptSpec) -> list[dict]:
    tok = proc.tokenizer
    rows = []
    for ex in exs:
        text = P.render(proc, ex, ps, audio=False)
        ids = tok(text, return_tensors="pt")
        with torch.no_grad():
            logits = model(**ids).logits[0, -1]
        cand = P.candidate_ids(tok, ex, ps)
        pred = int(torch.argmax(logits[cand]))
        top = int(torch.argmax(logits))
        rows.append({"id": ex.id, "pred": pred, "correct": pred in ex.correct, "cand_is_top1": top in cand})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("results/qmini/letter_probe.json"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    model, proc = qa.load_qmini(require_weights=False)
    exs = examples()
    res: dict = {"n_items": len(exs) // 4, "n_prompts": len(exs), "chance": 0.25}
    for scoring in ("letters", "first-token"):
        ps = P.prompt_spec(scoring)
        if scoring == "first-token":
            exs_s = []
            for e in exs:
                firsts = [proc.tokenizer.encode(c, add_special_tokens=False)[0] for c in e.choices]
                if len(set(firsts)) == 4:
                    exs_s.append(e)
        else:
            exs_s = exs
        rows = score(model, proc, exs_s, ps)
        res[scoring] = {
            "n": len(rows),
            "accuracy": sum(r["correct"] for r in rows) / len(rows),
            "predicted_position": dict(sorted(Counter("ABCD"[r["pred"]] for r in rows).items())),
            "candidate_is_top1_share": sum(r["cand_is_top1"] for r in rows) / len(rows),
            "items_right_in_all_4_rotations": sum(
                all(r["correct"] for r in rows if r["id"].startswith(f"q{i}-"))
                and any(r["id"].startswith(f"q{i}-") for r in rows)
                for i in range(res["n_items"])
            ),
        }
        print(scoring, json.dumps(res[scoring]), flush=True)  # noqa: T201
    res["seconds"] = round(time.time() - t0, 1)
    res["command"] = "python recipes/qmini/letter_probe.py"
    write_text(a.out, json.dumps(res, indent=1) + "\n")
    print(json.dumps(res))  # noqa: T201


if __name__ == "__main__":
    main()
