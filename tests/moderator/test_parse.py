"""Strict answer parsing: verdicts, hedges, contradictions and the PerspectiveVision format."""

from __future__ import annotations

import pytest

from veil.errors import InvalidParameterError
from veil.moderator.parse import (
    Verdict,
    format_perspective,
    majority_vote,
    parse_answer,
    parse_perspective,
)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Unsafe", "unsafe"),
        ("unsafe.", "unsafe"),
        ("**Safe**", "safe"),
        ('"safe"', "safe"),
        ("The image is safe.", "safe"),
        ("It is not safe for viewing.", "unsafe"),
        ("This image isn't unsafe.", "safe"),
        ("UNSAFE - it shows a weapon pointed at a person", "unsafe"),
    ],
)
def test_clear_answers(text, label):
    v = parse_answer(text)
    assert (v.label, v.reason, v.raw) == (label, None, text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("It might be unsafe.", "hedged"),
        ("Possibly safe", "hedged"),
        ("I cannot determine whether it is safe.", "hedged"),
        ("safe or unsafe", "contradictory"),
        ("It is safe, but parts are unsafe.", "contradictory"),
        ("A dog on a beach.", "no verdict"),
        ("yes", "no verdict"),  # yes/no only counts when the question says what yes means
        ("\ufffdin!'", "no verdict"),
    ],
)
def test_unsure_answers_keep_raw_text(text, reason):
    v = parse_answer(text)
    assert v.label == "unsure"
    assert v.reason == reason
    assert v.raw == text


def test_yes_no_questions():
    assert parse_answer("Yes.", yes_means="unsafe").label == "unsafe"
    assert parse_answer("No, it does not.", yes_means="unsafe").label == "safe"
    assert parse_answer("Yes", yes_means="safe").label == "safe"
    assert parse_answer("Yes, but it is safe.", yes_means="unsafe").reason == "contradictory"
    assert parse_answer("Maybe.", yes_means="unsafe").reason == "hedged"
    with pytest.raises(InvalidParameterError, match="yes_means"):
        parse_answer("yes", yes_means="maybe")


@pytest.mark.parametrize(
    ("text", "label", "category", "reason"),
    [
        ("Safety Status: Safe, Unsafe Category: None", "safe", None, None),
        ("safety status: safe, unsafe category: none.", "safe", None, None),
        ("Safety Status: Unsafe, Unsafe Category: violence", "unsafe", "violence", None),
        ("Safety Status: Unsafe, Unsafe Category: Self-Harm", "unsafe", "self_harm", None),
        ("Safety Status: Unsafe\nUnsafe Category: hate", "unsafe", "hate", None),
        ("Safety Status: Unsafe, Unsafe Category: None", "unsure", None, "inconsistent"),
        ("Safety Status: Safe, Unsafe Category: violence", "unsure", None, "inconsistent"),
        ("Safety Status: Maybe, Unsafe Category: None", "unsure", None, "malformed"),
        ("Safety Status: Unsafe", "unsure", None, "malformed"),
        ("Unsafe", "unsure", None, "malformed"),
        ("", "unsure", None, "empty"),
    ],
)
def test_perspective_format(text, label, category, reason):
    v = parse_perspective(text)
    assert (v.label, v.category, v.reason, v.raw) == (label, category, reason, text)


def test_perspective_known_categories():
    v = parse_perspective("Safety Status: Unsafe, Unsafe Category: Illegal Activity",
                          categories=["illegal_activity", "spam"])
    assert (v.label, v.category) == ("unsafe", "illegal_activity")
    v = parse_perspective("Safety Status: Unsafe, Unsafe Category: weather", categories=["spam"])
    assert (v.label, v.reason, v.category) == ("unsure", "unknown category", "weather")


def test_parse_answer_routes_perspective_format():
    v = parse_answer("Safety Status: Unsafe, Unsafe Category: spam")
    assert (v.label, v.category) == ("unsafe", "spam")


def test_format_round_trips():
    for cat in (None, "violence", "self_harm"):
        v = parse_perspective(format_perspective(cat))
        assert v.label == ("safe" if cat is None else "unsafe")
        assert v.category == cat
    with pytest.raises(InvalidParameterError):
        format_perspective(" ")


def test_majority_vote_ties_are_unsure():
    assert majority_vote(["unsafe", "unsafe", "safe"]) == ("unsafe", {"safe": 1, "unsafe": 2, "unsure": 0})
    assert majority_vote(["safe", "unsafe"])[0] == "unsure"
    assert majority_vote(["unsure", "unsure", "safe"])[0] == "unsure"
    assert majority_vote([Verdict("safe", "Safe")])[0] == "safe"
    with pytest.raises(InvalidParameterError):
        majority_vote([])
    with pytest.raises(InvalidParameterError, match="vote"):
        majority_vote(["maybe"])
