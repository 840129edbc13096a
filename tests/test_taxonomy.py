"""veil.taxonomy: categories, label mapping, curated questions."""

from __future__ import annotations

import pytest

from veil.errors import UnknownNameError
from veil.taxonomy import (
    CATEGORIES,
    GENERAL_QUESTIONS,
    GENERIC,
    NUDENET_LABELS,
    TAXONOMIES,
    attribute_name,
    category_for_label,
    category_for_question,
    get_category,
    label_categories,
    normalize_category,
    questions_for,
    taxonomy,
)


def test_paper_and_unsafebench_taxonomies():
    assert [c.key for c in taxonomy("paper")] == ["sexual", "cyberbullying", "self_harm"]
    ub = taxonomy("unsafebench")
    assert len(ub) == 11
    assert {c.key for c in ub} >= {"hate", "harassment", "violence", "self_harm", "sexual",
                                    "shocking", "illegal_activity", "deception", "political",
                                    "health", "spam"}
    with pytest.raises(UnknownNameError, match="paper"):
        taxonomy("nope")


@pytest.mark.parametrize("key", sorted(set(TAXONOMIES["paper"]) | set(TAXONOMIES["unsafebench"])))
def test_every_category_has_definition_and_questions(key):
    cat = CATEGORIES.get(key)
    assert len(cat.definition) > 30
    assert cat.questions and all(q.endswith("?") for q in cat.questions)
    assert category_for_question(cat.questions[0]) == key
    assert cat.to_dict()["key"] == key


def test_paper_questions_present():
    assert "Does the image contain any sexual content or nudity?" in questions_for("sexual")
    assert "Is there any aggressive behavior shown in the image?" in questions_for("cyberbullying")
    assert "Are there any depictions of self-harm in the image?" in questions_for("self-harm")
    assert GENERAL_QUESTIONS == ("What is happening in the image?", "What are the people doing?")
    for q in GENERAL_QUESTIONS:
        assert category_for_question(q) is None


@pytest.mark.parametrize(
    "name,key",
    [("Sexually explicit", "sexual"), ("self-harm", "self_harm"), ("Self Harm", "self_harm"),
     ("public and personal health", "health"), ("illegal activity", "illegal_activity"),
     ("bullying", "cyberbullying"), ("porn", "sexual")],
)
def test_get_category_aliases(name, key):
    assert get_category(name).key == key


def test_unknown_category_lists_valid():
    with pytest.raises(UnknownNameError, match="valid names: .*self_harm"):
        get_category("kittens")


def test_nudenet_exposed_labels_map_to_sexual():
    exposed = {"FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED",
               "BUTTOCKS_EXPOSED", "ANUS_EXPOSED"}
    for label in NUDENET_LABELS:
        expected = "sexual" if label in exposed else None
        assert category_for_label(label) == expected, label
    assert attribute_name("FEMALE_BREAST_EXPOSED") == "exposed female breast"


def test_card_categories_win_and_safe_labels_drop():
    assert category_for_label("class_2", {"class_2": "Self-Harm"}) == "self_harm"
    assert category_for_label("porn", {"porn": "violence"}) == "violence"
    assert category_for_label("neutral") is None
    assert category_for_label("drawings") is None
    with pytest.raises(UnknownNameError):
        category_for_label("x", {"x": "not a category"})


def test_label_categories_generic_fallback():
    m = label_categories(["safe", "unsafe", "gore"], ["unsafe", "gore"])
    assert m == {"unsafe": GENERIC.key, "gore": "violence"}
    assert "unsafe" not in TAXONOMIES["paper"] + TAXONOMIES["unsafebench"]


def test_normalize_and_question_routing():
    assert normalize_category(" Illegal-Activity ") == "illegal_activity"
    assert category_for_question("Is anyone naked here?") == "sexual"
    assert category_for_question("Do you see a knife attack?") == "violence"
