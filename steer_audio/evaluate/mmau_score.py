"""The official MMAU scoring rule, reimplemented (MMAU evaluation.py: word-set string match on the key
`model_output`), and the MMAU-compatible predictions file we write for it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..errors import SteerAudioError


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"\b\w+\b", text.lower()))


def string_match(answer: str, prediction: str, choices: list[str]) -> bool:
    pred, ans = _tokens(prediction), _tokens(answer)
    if not pred:
        return False
    wrong: set[str] = set()
    for c in choices:
        ct = _tokens(c)
        if ct != ans:
            wrong |= ct - ans
    return ans.issubset(pred) and pred.isdisjoint(wrong)


def _answer_tag(text: str) -> str:
    """R1-AQA's extraction (xiaomi-research/r1-aqa src/test.py): the first <answer>...</answer> (non-greedy,
    one line), else the whole text; stripped."""
    found = re.search(r"<answer>(.*?)</answer>", text)
    return (found.group(1) if found else text).strip()


#: how a generated text becomes the `model_output` the MMAU rule scores
EXTRACTORS: dict[str, Callable[[str], str]] = {
    "none": lambda text: text,
    "answer-tag": _answer_tag,
}


def extract(text: str, rule: str) -> str:
    if rule not in EXTRACTORS:
        raise SteerAudioError(f"unknown answer extraction {rule!r}: use {', '.join(EXTRACTORS)}")
    return EXTRACTORS[rule](text)


def official_accuracy(items: list[dict[str, Any]]) -> tuple[float, list[bool]]:
    """Accuracy over all items; an item without `model_output` counts as wrong (the official script
    silently skips it, which inflates accuracy)."""
    flags = [
        ("model_output" in it) and string_match(it["answer"], it["model_output"], it["choices"])
        for it in items
    ]
    return (sum(flags) / len(flags) if flags else float("nan")), flags
