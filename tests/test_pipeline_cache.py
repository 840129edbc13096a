"""veil.safeguard's classifier cache: bounded, least recently used out, reused across configs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from veil import pipeline
from veil.classify import CLASSIFIERS
from veil.errors import InvalidParameterError
from veil.pipeline import ClassifierCache, SafeguardConfig, safeguard


class _Blank:
    """Calls everything safe; counts how many were made."""

    made = 0

    def __init__(self) -> None:
        type(self).made += 1
        self.name, self.labels, self.unsafe_labels = "blank", ("safe", "unsafe"), ("unsafe",)
        self.threshold, self.config = 0.5, {}

    def predict_proba(self, images):
        return np.tile([[1.0, 0.0]], (len(images), 1))

    def unsafe_score(self, proba):
        return np.asarray(proba)[:, 1]


@pytest.fixture()
def names(monkeypatch):
    _Blank.made = 0
    for n in ("a", "b", "c"):
        monkeypatch.setitem(CLASSIFIERS._items, n, lambda **kw: _Blank())
    return ("a", "b", "c")


def test_cache_reuses_and_evicts_least_recently_used(names):
    cache = ClassifierCache(maxsize=2)
    a = cache.get("a")
    assert cache.get("a") is a and _Blank.made == 1
    cache.get("b")
    cache.get("a")  # a is now the most recent
    cache.get("c")  # evicts b
    assert len(cache) == 2 and _Blank.made == 3
    assert cache.get("a") is a and _Blank.made == 3
    cache.get("b")
    assert _Blank.made == 4


def test_objects_pass_through_uncached(names):
    cache = ClassifierCache(maxsize=1)
    clf = _Blank()
    assert cache.get(clf) is clf and len(cache) == 0


def test_card_key_changes_when_the_card_changes(tmp_path):
    card = tmp_path / "m.json"
    card.write_text("{}")
    k1 = ClassifierCache.key(str(card))
    os.utime(card, (1, 1))
    assert ClassifierCache.key(str(card)) != k1
    assert ClassifierCache.key("nudenet") == ("nudenet", None)


def test_bad_maxsize_names_the_value():
    with pytest.raises(InvalidParameterError, match="maxsize must be at least 1, got 0"):
        ClassifierCache(maxsize=0)


def test_safeguard_loads_a_model_once_across_configs(names, monkeypatch):
    monkeypatch.setattr(pipeline, "CLASSIFIER_CACHE", ClassifierCache(maxsize=4))
    img = np.full((40, 40, 3), 128, np.uint8)
    r1 = safeguard(img, SafeguardConfig(models=("a",), rationale=None))
    r2 = safeguard(img, SafeguardConfig(models=("a",), rationale=None, max_depth=3))
    assert not r1.unsafe and not r2.unsafe
    assert _Blank.made == 1
    assert r2.settings["max_depth"] == 3  # each call runs with its own config
