"""PerspectiveVision prompts: own category present, negatives correct, balance, seeding."""

from __future__ import annotations

import pytest

from veil.errors import InvalidParameterError
from veil.moderator.parse import parse_perspective
from veil.moderator.sampler import build_prompt, category_definitions, sample_prompts
from veil.taxonomy import taxonomy

CATS = [c.key for c in taxonomy("unsafebench")]


def _records(n_safe=30, n_unsafe=10):
    recs = [{"safety_label": "Safe", "category": CATS[i % len(CATS)]} for i in range(n_safe)]
    recs += [{"safety_label": "Unsafe", "category": CATS[(3 * i) % len(CATS)]} for i in range(n_unsafe)]
    return recs


def _listed(prompt):
    return [line[2:].split(":", 1)[0] for line in prompt.splitlines() if line.startswith("- ")]


def test_prompts_list_the_categories_with_definitions():
    recs = _records()
    defs = category_definitions()
    for s in sample_prompts(recs, rng=0):
        assert _listed(s.prompt) == list(s.categories)
        assert len(set(s.categories)) == len(s.categories) >= 1
        for c in s.categories:
            assert f"- {c}: {defs[c]}" in s.prompt
        assert "Safety Status: Safe, Unsafe Category: None" in s.prompt


def test_own_category_and_targets():
    recs = _records()
    samples = sample_prompts(recs, rng=1)
    for s in samples:
        own = recs[s.index]["category"]
        unsafe_image = recs[s.index]["safety_label"] == "Unsafe"
        verdict = parse_perspective(s.target, categories=CATS)
        if s.kind == "safe":
            assert not unsafe_image and own in s.categories
            assert (verdict.label, s.label) == ("safe", "safe")
        elif s.kind == "positive":
            assert unsafe_image and own in s.categories
            assert (verdict.label, verdict.category, s.category) == ("unsafe", own, own)
        else:  # negative: an unsafe image asked only about other categories is safe
            assert s.kind == "negative" and unsafe_image and own not in s.categories
            assert (verdict.label, s.label, s.category) == ("safe", "safe", None)
    assert {s.kind for s in samples} == {"safe", "positive", "negative"}


def test_unsafe_oversampled_to_balance():
    recs = _records(30, 5)
    samples = sample_prompts(recs, rng=2, negative_rate=0.4)
    n_safe = sum(s.label == "safe" for s in samples)
    n_unsafe = sum(s.label == "unsafe" for s in samples)
    assert n_unsafe == n_safe
    # every unsafe image appears, round-robin: per-image counts differ by at most one
    per_image = [sum(s.index == i and s.kind == "positive" for s in samples) for i in range(30, 35)]
    assert max(per_image) - min(per_image) <= 1 and min(per_image) >= 1
    unbalanced = sample_prompts(recs, rng=2, negative_rate=0.4, balance=False)
    assert sum(s.label == "unsafe" for s in unbalanced) == 5


def test_negative_rate_extremes_and_subset_size():
    recs = _records(2, 6)
    assert not any(s.kind == "negative" for s in sample_prompts(recs, rng=0, negative_rate=0.0))
    all_neg = sample_prompts(recs, rng=0, negative_rate=1.0, balance=False)
    assert sum(s.kind == "negative" for s in all_neg) == 6
    for s in sample_prompts(recs, rng=0, n_categories=(2, 3)):
        assert 2 <= len(s.categories) <= 3
    for s in sample_prompts(recs, rng=0, n_categories=1):
        assert len(s.categories) == 1


def test_seeded_and_inputs_untouched():
    recs = _records()
    before = [dict(r) for r in recs]
    assert sample_prompts(recs, rng=5) == sample_prompts(recs, rng=5)
    assert sample_prompts(recs, rng=5) != sample_prompts(recs, rng=6)
    assert recs == before


def test_aliases_custom_categories_and_errors():
    s = sample_prompts([{"safety_label": 1, "category": "Self-Harm"}], categories=["self_harm", "spam"],
                       rng=0, negative_rate=0.0)
    assert s[0].target == "Safety Status: Unsafe, Unsafe Category: self_harm"
    custom = {"weapons": "guns or knives", "drugs": "illegal drugs"}
    s = sample_prompts([{"safety_label": "safe", "category": "drugs"}], categories=custom, rng=0)
    assert "- drugs: illegal drugs" in s[0].prompt
    with pytest.raises(InvalidParameterError, match="record 0"):
        sample_prompts([{"safety_label": "safe", "category": "weather"}], categories=custom)
    with pytest.raises(InvalidParameterError, match="safety_label"):
        sample_prompts([{"safety_label": "perhaps", "category": "drugs"}], categories=custom)
    with pytest.raises(InvalidParameterError, match="negative_rate"):
        sample_prompts(_records(), negative_rate=2)
    with pytest.raises(InvalidParameterError, match="only 2"):
        sample_prompts([{"safety_label": "safe", "category": "drugs"}], categories=custom, n_categories=3)
    with pytest.raises(InvalidParameterError):
        build_prompt([], {})
