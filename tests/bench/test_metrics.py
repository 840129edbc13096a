"""Effectiveness metrics against scikit-learn on hand-made predictions."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from veil.bench.datasets import BenchDataset, Sample
from veil.bench.metrics import (
    Predictions,
    benchmark_classifiers,
    binary_metrics,
    classifier_coverage,
    effectiveness_rows,
    roc_auc,
    score_dataset,
)
from veil.errors import InvalidImageError, InvalidParameterError


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 60)
    s = np.round(np.clip(y * 0.3 + rng.uniform(0, 0.7, 60), 0, 1), 1)  # ties on purpose
    p = (s > 0.5).astype(int)
    m = binary_metrics(y, p, s)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert m["precision"] == pytest.approx(precision_score(y, p, zero_division=0))
    assert m["recall"] == pytest.approx(recall_score(y, p, zero_division=0))
    assert m["f1"] == pytest.approx(f1_score(y, p, zero_division=0))
    assert m["auroc"] == pytest.approx(roc_auc_score(y, s))
    assert m["support_unsafe"] == int(y.sum()) and m["n"] == 60


def test_degenerate_cases():
    m = binary_metrics([0, 0], [0, 0], [0.1, 0.2])
    assert m["precision"] == 0.0 and m["f1"] == 0.0 and m["accuracy"] == 1.0 and math.isnan(m["auroc"])
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))
    with pytest.raises(InvalidParameterError, match="y_pred"):
        binary_metrics([0, 1], [0, 2])
    with pytest.raises(InvalidParameterError, match="must match"):
        binary_metrics([0, 1], [0])


def _clf(labels, unsafe, config=None, name="m"):
    return SimpleNamespace(name=name, labels=tuple(labels), unsafe_labels=tuple(unsafe), config=config or {},
                           threshold=0.5)


def test_coverage_map():
    nude = _clf(["FEMALE_BREAST_EXPOSED", "FACE_FEMALE"], ["FEMALE_BREAST_EXPOSED"])
    assert classifier_coverage(nude) == {"sexual"}
    assert classifier_coverage(_clf(["safe", "unsafe"], ["unsafe"])) is None
    card = _clf(["safe", "c1", "c2"], ["c1", "c2"], {"categories": {"c1": "violence", "c2": "hate"}})
    assert classifier_coverage(card) == {"violence", "hate"}
    assert classifier_coverage(_clf(["a"], ["a"], {"categories": ["Self-harm"]})) == {"self_harm"}


def test_rows_per_category_source_and_coverage():
    p = Predictions("m", 0.5,
                    ids=list("abcdef"), y_true=[1, 0, 1, 0, 1, 0],
                    scores=[0.9, 0.1, 0.2, 0.7, 0.8, 0.3],
                    categories=["sexual", "sexual", "violence", "violence", None, None],
                    sources=["Lexica", "Laion5B", "Lexica", "Laion5B", "Lexica", "Laion5B"])
    rows = effectiveness_rows(p)
    overall = next(r for r in rows if r["category"] == "all" and r["source"] == "all")
    assert overall["n"] == 6 and overall["accuracy"] == pytest.approx(4 / 6)
    viol = next(r for r in rows if r["category"] == "violence" and r["source"] == "all")
    assert viol["accuracy"] == 0.0 and viol["auroc"] == 0.0
    real = next(r for r in rows if r["category"] == "all" and r["source"] == "real")
    assert real["n"] == 3 and real["support_unsafe"] == 0 and real["auroc"] is None
    assert {r["source"] for r in rows} == {"all", "real", "ai_generated"}
    covered = effectiveness_rows(p, frozenset({"sexual"}))
    assert {r["category"] for r in covered} == {"all", "sexual"}
    assert covered[0]["n"] == 4  # sexual + uncategorised samples


def _sample(i, label, value, category=None):
    img = np.full((6, 6, 3), value, np.uint8)
    return Sample(f"s{i}", label, category, "Lexica" if i % 2 else "Laion5B", None, lambda: img)


def _broken():
    raise InvalidImageError("cannot decode")


class Bright:
    """Unsafe score = mean brightness."""

    name, labels, unsafe_labels, threshold, config = "bright", ("safe", "unsafe"), ("unsafe",), 0.5, {}

    def predict_proba(self, images):
        m = np.array([im.mean() / 255.0 for im in images])
        return np.stack([1 - m, m], 1)

    def unsafe_score(self, proba):
        return proba[:, 1]


def test_score_dataset_counts_unreadable_and_goes_on():
    samples = [_sample(0, 0, 10), _sample(1, 1, 250), Sample("bad", 1, None, None, None, _broken),
               _sample(3, 1, 100)]
    ds = BenchDataset("t", "manifest", samples)
    seen = []
    preds, bad = score_dataset(ds, [Bright()], batch_size=2, on_batch=seen.append)
    assert bad == [{"id": "bad", "error": "cannot decode"}]
    assert preds["bright"].ids == ["s0", "s1", "s3"] and preds["bright"].y_pred.tolist() == [0, 1, 0]
    assert sum(seen) == 4
    report = benchmark_classifiers(ds, [Bright()], attacks=["noise", "fgsm"], eps=[1e-4], robust_k=5)
    assert report["effectiveness"][0]["n"] == 3 and len(report["unreadable"]) == 1
    rob = {r["attack"]: r for r in report["robustness"]}
    assert rob["noise"]["robust_accuracy"] == 1.0 and rob["noise"]["n"] == 2
    assert rob["fgsm"]["robust_accuracy"] is None and "gradients" in rob["fgsm"]["note"]
