"""MMAU's string-match rule (Sakshi113/MMAU evaluation.py), reimplemented in evaluate/mmau_score.py, on
hand-written cases whose outcome follows from the rule as the official script states it: the prediction's
word set must contain every word of the answer and no word of any other choice that the answer lacks; an
empty prediction (no word at all) is wrong; words are lower-cased `\\b\\w+\\b` runs."""

from __future__ import annotations

import pytest

from steer_audio.errors import SteerAudioError
from steer_audio.evaluate.mmau_score import extract, official_accuracy, string_match

CH = ["a dog barking", "a cat meowing", "rain", "a siren"]


@pytest.mark.parametrize(
    ("prediction", "answer", "choices", "expected"),
    [
        # empty generations: no word token at all is always wrong, even against an empty answer
        ("", "rain", CH, False),
        ("   \n", "rain", CH, False),
        ("...!?", "rain", CH, False),
        ("", "", ["", "x"], False),
        # the answer's words, in any order and case, with words no choice has
        ("Rain.", "rain", CH, True),
        ("The answer is: RAIN", "rain", CH, True),
        ("barking, a dog", "a dog barking", CH, True),
        # text matching several choices is wrong, whichever comes first
        ("rain or a siren", "rain", CH, False),
        ("a siren, not rain", "rain", CH, False),
        ("a dog barking and a cat meowing", "a dog barking", CH, False),
        # words shared with wrong choices are allowed ("a" is in the answer), partial answers are not
        ("a dog", "a dog barking", CH, False),
        ("dog barking", "a dog barking", CH, False),
        # a choice that is a substring of another
        ("dog", "dog", ["dog", "dog barking"], True),
        ("dog barking", "dog", ["dog", "dog barking"], False),
        ("dog", "dog barking", ["dog", "dog barking"], False),
        ("the dog is barking", "dog barking", ["dog", "dog barking"], True),
        # characters inside a word do not count: "cat" is not in "category"
        ("category", "cat", ["cat", "dog"], False),
        ("a cat", "cat", ["cat", "category"], True),
        # letter labels carry no choice word: "(A)" alone is wrong, "(A) rain" is right
        ("(A)", "rain", ["rain", "snow"], False),
        ("(A) rain", "rain", ["rain", "snow"], True),
        # a choice with the answer's exact word set (a duplicate) adds no wrong words
        ("male", "Male", ["male", "MALE", "female"], True),
        # the answer need not be among the choices; wrong words are then every choice word it lacks
        ("wind", "wind", ["rain", "snow"], True),
        ("wind and rain", "wind", ["rain", "snow"], False),
        # underscores and digits are word characters
        ("track_2", "track_2", ["track_2", "track_3"], True),
        ("track 2", "track_2", ["track_2", "track_3"], False),
    ],
)
def test_string_match_hand_written(prediction, answer, choices, expected):
    assert string_match(answer, prediction, choices) is expected


def test_missing_prediction_counts_as_wrong():
    items = [
        {"answer": "rain", "choices": CH, "model_output": "rain"},
        {"answer": "rain", "choices": CH},
        {"answer": "a siren", "choices": CH, "model_output": ""},
    ]
    acc, flags = official_accuracy(items)
    assert flags == [True, False, False]
    assert acc == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("text", "rule", "want"),
    [
        ("<answer> rain </answer>", "answer-tag", "rain"),
        ("I think <answer>rain</answer> or <answer>snow</answer>", "answer-tag", "rain"),
        ("no tags: rain", "answer-tag", "no tags: rain"),
        ("<answer>rain", "answer-tag", "<answer>rain"),
        ("<answer>a\nb</answer>", "answer-tag", "<answer>a\nb</answer>"),  # `.` stops at a newline
        ("  rain  ", "none", "  rain  "),
    ],
)
def test_extraction(text, rule, want):
    assert extract(text, rule) == want


def test_unknown_extraction_is_a_user_error():
    with pytest.raises(SteerAudioError, match="unknown answer extraction"):
        extract("x", "regex")
