"""Prompt templates and the candidate token of each option (what the option's score is read from).

"letters" (the paper's protocol): options listed as (A) ... ; score = next-token logit of the label letter.
"first-token": options listed as plain text; score = next-token logit of the first token of the option text
(used by small models that cannot do letter multiple choice; see the embedded `mini` model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import SteerAudioError
from .mmau import Example

LETTERS = "ABCDEFGHIJ"

TEMPLATES: dict[str, str] = {
    "letters": "{question}\nOptions:\n{options}\nAnswer with the option's letter from the given options directly.",
    # the embedded model was trained with exactly this text (listen-bench's prompt, bench/listen_bench.py)
    "first-token": "{question}\nChoices: {options}.\nAnswer with one of the choices.",
}


#: prompts for the generate protocol, by name: (template, how the answer is read from the generated text,
#: where the practice is published). {question}, {options} (as the scoring lists them), {choices} (Python list)
GENERATION_TEMPLATES: dict[str, tuple[str, str, str]] = {
    "r1-aqa": (
        "{question} Please choose the answer from the following options: {choices}. "
        "Output the final answer in <answer> </answer>.",
        "answer-tag",
        "R1-AQA's MMAU test prompt and <answer> extraction (xiaomi-research/r1-aqa src/test.py)",
    ),
    "mmau-choices": (
        "{question} Please choose the answer from the following options: {choices}.",
        "none",
        "R1-AQA's test prompt without the <answer> instruction: MMAU does not publish the prompt behind its "
        "Qwen2-Audio-Instruct leaderboard row, and the base model was not trained to answer in tags",
    ),
}


@dataclass(frozen=True)
class PromptSpec:
    scoring: str
    template: str
    #: prefix before each label token ("" gives "A"; " " would give " A"); recorded in meta
    label_prefix: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"scoring": self.scoring, "template": self.template, "label_prefix": self.label_prefix}


def prompt_spec(scoring: str) -> PromptSpec:
    if scoring not in TEMPLATES:
        raise SteerAudioError(f"unknown scoring {scoring!r}: use one of {', '.join(TEMPLATES)}")
    return PromptSpec(scoring, TEMPLATES[scoring])


def user_text(ex: Example, ps: PromptSpec) -> str:
    return format_prompt(ps, ex.question, ex.choices, ex.id)


def format_prompt(ps: PromptSpec, question: str, choices: Sequence[str], item_id: str = "?") -> str:
    """The user text of one question under `ps` (the audio goes before it in the chat template)."""
    if ps.scoring == "letters":
        if len(choices) > len(LETTERS):
            raise SteerAudioError(f"item {item_id}: {len(choices)} options exceed the {len(LETTERS)} labels")
        opts = "\n".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices))
    else:
        opts = ", ".join(choices)
    # {choices}: the option list as Python writes it, the form R1-AQA's MMAU test prompt uses
    return ps.template.format(question=question, options=opts, choices=repr(list(choices)))


def conversation(ex: Example, ps: PromptSpec, audio: bool = True) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = (
        [{"type": "audio", "audio_url": str(ex.audio_path or ex.id)}] if audio else []
    )
    return [{"role": "user", "content": [*content, {"type": "text", "text": user_text(ex, ps)}]}]


def render(processor: Any, ex: Example, ps: PromptSpec, audio: bool = True) -> str:
    """The chat-templated prompt up to the assistant turn (`audio=False`: the same prompt with no audio)."""
    return processor.apply_chat_template(
        conversation(ex, ps, audio), add_generation_prompt=True, tokenize=False
    )


def single_token(tokenizer: Any, text: str, what: str) -> int:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise SteerAudioError(f"{what} {text!r} is {len(ids)} tokens under this tokenizer, expected one")
    return int(ids[0])


def candidate_ids(tokenizer: Any, ex: Example, ps: PromptSpec) -> list[int]:
    """The token whose next-token logit scores each option, in option order."""
    if ps.scoring == "letters":
        return [
            single_token(tokenizer, ps.label_prefix + LETTERS[i], "label") for i in range(len(ex.choices))
        ]
    ids = [int(tokenizer.encode(c, add_special_tokens=False)[0]) for c in ex.choices]
    dup = {t for t in ids if ids.count(t) > 1}
    if dup:
        clash = [c for c, t in zip(ex.choices, ids, strict=True) if t in dup]
        raise SteerAudioError(
            f"item {ex.id}: options {clash} share a first token; first-token scoring cannot tell them apart"
        )
    return ids
