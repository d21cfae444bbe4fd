"""listen-bench's items, before any audio: the seeded plan of base items (answer, choices, prior, hint variant,
SNR, clip length, audio seed) and the four twin rows of each, in MMAU format. Fully determined by the config.

Every base item (one clip, one question, four choices) is written as four twins (CONDITIONS): ``neutral``,
``misleading`` (a hint naming a wrong choice), ``consistent`` (the same hint naming the answer) and ``silence``
(the misleading text over digital zeros). Splits are disjoint by hint/question variant and seed."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import BenchError
from .templates import TEMPLATES

AUDIO_DIR = "audio"
CONDITIONS = ("neutral", "misleading", "consistent", "silence")
SPLITS = ("train", "calib", "test")

# Hint sentences; the split decides which variants are used (disjoint).
HINTS = (
    "The label on this file says: {h}.",
    "My friend listened to it and is sure the answer is {h}.",
    "According to the notes that came with it, the answer is {h}.",
    "An expert who heard this recording said: {h}.",
)
HINT_VARIANTS = {"train": (0, 1), "calib": (2,), "test": (3,)}
QUESTION_VARIANT = {"train": 0, "calib": 1, "test": 1}


@dataclass(frozen=True)
class BenchConfig:
    n_train: int = 100  # base items per template in the training split
    n_calib: int = 25
    n_test: int = 25
    seed: int = 0
    templates: tuple[str, ...] = field(default_factory=lambda: tuple(TEMPLATES))


def derive_seed(*parts: object) -> int:
    h = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little")


def difficulty(snr: float) -> str:
    return "hard" if snr < 3 else ("medium" if snr < 10 else "easy")


def base_items(cfg: BenchConfig) -> list[dict]:
    """The plan (no audio): one dict per base item, fully determined by the config."""
    plan = []
    sizes = {"train": cfg.n_train, "calib": cfg.n_calib, "test": cfg.n_test}
    for split in SPLITS:
        for tname in cfg.templates:
            if tname not in TEMPLATES:
                raise BenchError(f"unknown template {tname!r}; known: {', '.join(TEMPLATES)}")
            t = TEMPLATES[tname]
            for i in range(sizes[split]):
                rng = np.random.default_rng(derive_seed(cfg.seed, split, tname, i, "plan"))
                ans_pos = i % 4
                prior_pos = (ans_pos + 1 + (i // 4) % 3) % 4
                # balance the answer label over the pool, decoupled from its position (i % 4)
                offset = int(derive_seed(cfg.seed, split, tname)) % len(t.pool)
                label = t.pool[(i + i // 4 + offset) % len(t.pool)]
                others = [p for p in t.pool if p != label]
                picks = [others[j] for j in rng.permutation(len(others))[:3]]
                choices = picks[:]
                choices.insert(ans_pos, label)
                hint_v = HINT_VARIANTS[split][i % len(HINT_VARIANTS[split])]
                plan.append(
                    {
                        "base": f"lb-{split}-{tname}-{i:04d}",
                        "split": split,
                        "template": tname,
                        "index": i,
                        "answer": label,
                        "choices": choices,
                        "prior": choices[prior_pos],
                        "hint_variant": hint_v,
                        "question": t.questions[QUESTION_VARIANT[split]],
                        "snr_db": round(float(rng.uniform(*t.snr_db)), 2),
                        "total_s": round(float(rng.uniform(*t.total_s)), 2),
                        "audio_seed": derive_seed(cfg.seed, split, tname, i, "audio"),
                    }
                )
    return plan


def twin_rows(b: dict) -> list[dict]:
    """The four twins of base item `b` (CONDITIONS), as listen-bench.json rows."""
    t = TEMPLATES[b["template"]]
    return twins(
        b,
        HINTS[b["hint_variant"]],
        b["question"],
        dataset="listen-bench",
        task=t.task,
        split=b["split"],
        category=t.category,
        sub_category=t.sub_category,
        difficulty=difficulty(b["snr_db"]),
        source=t.source,
        snr_db=b["snr_db"],
    )


def twins(
    it: dict,
    hint: str,
    question: str,
    *,
    dataset: str,
    task: str,
    split: str,
    category: str,
    sub_category: str,
    difficulty: str,
    source: str,
    snr_db: float | None,
) -> list[dict]:
    """The four twin rows (CONDITIONS) of one base item `it` (keys base, template, choices, answer, prior,
    hint_variant), in the row format every listen-* set shares: neutral asks `question`; consistent and
    misleading prefix `hint` naming the answer / the prior; the silence twin has the misleading text and
    the all-zero clip. Used by listen-bench, listen-heldout and listen-broad."""
    rows = []
    for cond in CONDITIONS:
        if cond == "neutral":
            q, prior = question, None
        elif cond == "consistent":
            q, prior = hint.format(h=it["answer"]) + " " + question, it["answer"]
        else:  # misleading and silence share the misleading text
            q, prior = hint.format(h=it["prior"]) + " " + question, it["prior"]
        audio = f"./{AUDIO_DIR}/{it['base']}{'-silence' if cond == 'silence' else ''}.wav"
        rows.append(
            {
                "id": f"{it['base']}-{cond}",
                "audio_id": audio,
                "question": q,
                "choices": list(it["choices"]),
                "answer": it["answer"],
                "dataset": dataset,
                "task": task,
                "split": split,
                "category": category,
                "sub-category": sub_category,
                "difficulty": difficulty,
                "prior_choice": prior,
                "condition": cond,
                "twin_of": f"{it['base']}-neutral",
                "template": it["template"],
                "source": source,
                "hint_variant": None if cond == "neutral" else it["hint_variant"],
                "snr_db": snr_db,
            }
        )
    return rows


def choice_token_ids(tokenizer: object, choices: Sequence[str]) -> list[int]:
    """First token of each choice as it follows the assistant prefix (``<start_of_turn>model\\n``)."""
    ids = []
    for c in choices:
        toks = tokenizer(c, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        if not toks:
            raise BenchError(f"choice {c!r} tokenizes to nothing")
        ids.append(int(toks[0]))
    return ids


def first_tokens_distinct(tokenizer: object | None, choices: Sequence[str]) -> bool:
    """Whether the choices' first tokens all differ (always True without a tokenizer)."""
    if tokenizer is None:
        return True
    ids = choice_token_ids(tokenizer, choices)
    return len(set(ids)) == len(ids)


def check_choice_tokens(rows: Sequence[dict], tokenizer: object) -> None:
    """Fail loudly if two choices of an item share their first token."""
    bad = []
    for r in rows:
        ids = choice_token_ids(tokenizer, r["choices"])
        if len(set(ids)) != len(ids):
            bad.append(f"{r['id']}: {r['choices']} -> {ids}")
    if bad:
        raise BenchError(f"{len(bad)} items have choices with the same first token, e.g. {bad[:3]}")
