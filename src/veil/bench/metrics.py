"""Effectiveness of image safety classifiers (scores over a dataset, UnsafeBench-style metrics)
and quality of superpixels against human segmentations (boundary recall, undersegmentation
error, achievable segmentation accuracy; used by ``bench/superpixels.py``).

Unsafe is the positive class. Metrics are reported overall (``category == "all"``,
``source == "all"``), per category, per source kind (``"real"`` / ``"ai_generated"``,
see :func:`veil.bench.datasets.source_kind`) and per category × source kind. A
classifier is only judged on the categories it claims to cover
(:func:`classifier_coverage`): NudeNet covers ``sexual``; a model card's
``"categories"`` mapping names its categories; a classifier without a mapping
covers everything. Samples without a category count for every classifier.

Examples
--------
>>> m = binary_metrics([1, 0, 1, 0], [1, 0, 0, 0], [0.9, 0.2, 0.4, 0.1])
>>> m["precision"], m["recall"], m["auroc"]
(1.0, 0.5, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from veil.bench.datasets import BenchDataset, source_kind
from veil.classify.base import Classifier
from veil.errors import InvalidImageError, InvalidParameterError
from veil.taxonomy import GENERIC, get_category, label_categories

__all__ = [
    "Predictions",
    "achievable_segmentation_accuracy",
    "benchmark_classifiers",
    "binary_metrics",
    "boundary_recall",
    "classifier_coverage",
    "effectiveness_rows",
    "label_boundaries",
    "roc_auc",
    "score_dataset",
    "superpixel_metrics",
    "undersegmentation_error",
]


def _check_binary(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidParameterError(f"{name} (shape {arr.shape}) must be one-dimensional")
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise InvalidParameterError(f"{name} must hold only 0 (safe) and 1 (unsafe), got {np.unique(arr)[:5]}")
    return arr.astype(np.int64)


def roc_auc(y_true: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve (ties count half); ``nan`` unless both classes are present.

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    y = _check_binary("y_true", y_true)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != y.shape:
        raise InvalidParameterError(f"scores (shape {s.shape}) must match y_true (shape {y.shape})")
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # Mann–Whitney U from average ranks.
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def binary_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    scores: Sequence[float] | np.ndarray | None = None,
) -> dict[str, Any]:
    """Accuracy, precision, recall, F1 (unsafe = positive), AUROC and support counts.

    Undefined ratios (no predicted or no true positives) are 0.0, as scikit-learn's
    ``zero_division=0``; AUROC is ``nan`` without scores or with one class only.

    Examples
    --------
    >>> binary_metrics([1, 1, 0], [1, 0, 0])["f1"]
    0.6666666666666666
    """
    y = _check_binary("y_true", y_true)
    p = _check_binary("y_pred", y_pred)
    if p.shape != y.shape:
        raise InvalidParameterError(f"y_pred (shape {p.shape}) must match y_true (shape {y.shape})")
    tp = int(((y == 1) & (p == 1)).sum())
    fp = int(((y == 0) & (p == 1)).sum())
    fn = int(((y == 1) & (p == 0)).sum())
    tn = int(((y == 0) & (p == 0)).sum())
    n = len(y)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n": n,
        "accuracy": (tp + tn) / n if n else float("nan"),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auroc": roc_auc(y, scores) if scores is not None else float("nan"),
        "support_unsafe": tp + fn,
        "support_safe": tn + fp,
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
    }


def classifier_coverage(classifier: Classifier) -> frozenset[str] | None:
    """The category keys a classifier claims to cover, or ``None`` for "all categories".

    Read from the model card's ``"categories"`` (a ``{label: category}`` mapping or a
    list of categories) and from built-in label rules (NudeNet labels → ``sexual``).
    Labels that map only to the generic ``"unsafe"`` category claim nothing.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> clf = SimpleNamespace(labels=("safe", "porn"), unsafe_labels=("porn",), config={})
    >>> sorted(classifier_coverage(clf))
    ['sexual']
    """
    config = getattr(classifier, "config", None) or {}
    cats = config.get("categories") if isinstance(config, dict) else None
    if isinstance(cats, (list, tuple)):
        keys = {get_category(str(c)).key for c in cats}
    else:
        mapping = cats if isinstance(cats, dict) else None
        keys = set(label_categories(classifier.labels, classifier.unsafe_labels, mapping).values())
    keys.discard(GENERIC.key)
    return frozenset(keys) or None


@dataclass
class Predictions:
    """One classifier's scores over the readable samples of a dataset."""

    classifier: str
    threshold: float
    ids: list[str] = field(default_factory=list)
    y_true: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    categories: list[str | None] = field(default_factory=list)
    sources: list[str | None] = field(default_factory=list)

    @property
    def y_pred(self) -> np.ndarray:
        return (np.asarray(self.scores, np.float64) > self.threshold).astype(np.int64)


def score_dataset(
    dataset: BenchDataset,
    classifiers: Sequence[Classifier],
    *,
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[dict[str, Predictions], list[dict[str, str]]]:
    """Decode each image once and score it with every classifier.

    Parameters
    ----------
    dataset : BenchDataset
    classifiers : sequence of Classifier
        Names must be unique.
    batch_size : int
        Images decoded and classified together.
    on_batch : callable, optional
        Called with the number of samples handled after each batch (progress bars).

    Returns
    -------
    predictions : dict
        ``{classifier name: Predictions}``.
    unreadable : list of dict
        ``{"id", "error"}`` for every image that could not be decoded (left out of the scores).

    Examples
    --------
    >>> preds, bad = score_dataset(ds, [clf])  # doctest: +SKIP
    """
    if batch_size < 1:
        raise InvalidParameterError(f"batch_size must be at least 1, got {batch_size}")
    names = [c.name for c in classifiers]
    if len(set(names)) != len(names):
        raise InvalidParameterError(f"classifier names must be unique, got {names}; set 'name' in the model cards")
    preds = {c.name: Predictions(c.name, float(c.threshold)) for c in classifiers}
    unreadable: list[dict[str, str]] = []
    samples = dataset.samples
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        images, kept = [], []
        for s in chunk:
            try:
                images.append(s.load())
                kept.append(s)
            except (InvalidImageError, OSError) as exc:
                unreadable.append({"id": s.id, "error": str(exc)})
        if images:
            for clf in classifiers:
                score = np.asarray(clf.unsafe_score(clf.predict_proba(images)), np.float64)
                p = preds[clf.name]
                p.ids += [s.id for s in kept]
                p.y_true += [s.label for s in kept]
                p.scores += [float(v) for v in score]
                p.categories += [s.category for s in kept]
                p.sources += [s.source for s in kept]
        if on_batch is not None:
            on_batch(len(chunk))
    return preds, unreadable


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def effectiveness_rows(predictions: Predictions, coverage: frozenset[str] | None = None) -> list[dict[str, Any]]:
    """Metric rows for one classifier: overall, per category, per source kind, per both.

    Only samples whose category is covered (or unknown) count. Each row is
    ``{classifier, category, source, n, accuracy, precision, recall, f1, auroc,
    support_unsafe, support_safe, tp, fp, tn, fn}``; ``"all"`` marks the overall figure;
    ``auroc`` is ``None`` where undefined.

    Examples
    --------
    >>> p = Predictions("m", 0.5, ["a", "b"], [1, 0], [0.9, 0.2], ["sexual", "sexual"], ["Lexica", "Laion5B"])
    >>> [(r["category"], r["source"], r["accuracy"]) for r in effectiveness_rows(p)][:2]
    [('all', 'all', 1.0), ('sexual', 'all', 1.0)]
    """
    y = np.asarray(predictions.y_true, np.int64)
    s = np.asarray(predictions.scores, np.float64)
    yp = predictions.y_pred
    cats = np.array([c if c is not None else "" for c in predictions.categories], dtype=object)
    kinds = np.array([source_kind(x) for x in predictions.sources], dtype=object)
    keep = np.array([c == "" or coverage is None or c in coverage for c in cats], dtype=bool)
    y, s, yp, cats, kinds = y[keep], s[keep], yp[keep], cats[keep], kinds[keep]

    rows: list[dict[str, Any]] = []

    def add(category: str, source: str, sel: np.ndarray) -> None:
        if not sel.any():
            return
        m = binary_metrics(y[sel], yp[sel], s[sel])
        rows.append({"classifier": predictions.classifier, "category": category, "source": source,
                     **{k: _clean(v) for k, v in m.items()}})

    everything = np.ones(len(y), bool)
    add("all", "all", everything)
    present_cats = sorted({c for c in cats if c})
    present_kinds = sorted(set(kinds))
    for c in present_cats:
        add(c, "all", cats == c)
    if len(present_kinds) > 1 or (present_kinds and present_kinds[0] != "unknown"):
        for k in present_kinds:
            add("all", k, kinds == k)
        for c in present_cats:
            for k in present_kinds:
                add(c, k, (cats == c) & (kinds == k))
    return rows


def benchmark_classifiers(
    dataset: BenchDataset,
    classifiers: Sequence[Classifier],
    *,
    attacks: Sequence[str] = (),
    eps: Sequence[float] = (0.01,),
    robust_k: int = 50,
    pgd_steps: int = 100,
    seed: int | None = 0,
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
    on_attack: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Effectiveness (and, with ``attacks``, robustness) of classifiers over a dataset: a report dict.

    Robustness runs on ``robust_k`` correctly classified images of the categories each
    classifier covers, drawn with ``seed``. The result is what ``veil bench classifiers``
    writes to ``report.json`` (see :func:`veil.bench.report.write_report`).

    Examples
    --------
    >>> report = benchmark_classifiers(load_dataset("data/tiny"), [clf])  # doctest: +SKIP
    >>> report["effectiveness"][0]["category"]  # doctest: +SKIP
    'all'
    """
    from veil.bench.attacks import evaluate_robustness, select_correct

    if robust_k < 1:
        raise InvalidParameterError(f"robust_k must be at least 1, got {robust_k}")
    preds, unreadable = score_dataset(dataset, classifiers, batch_size=batch_size, on_batch=on_batch)
    by_id = {s.id: s for s in dataset}
    effectiveness: list[dict[str, Any]] = []
    robustness: list[dict[str, Any]] = []
    described = []
    for clf in classifiers:
        p = preds[clf.name]
        cov = classifier_coverage(clf)
        described.append({"name": clf.name, "threshold": float(clf.threshold),
                          "coverage": sorted(cov) if cov is not None else None,
                          "labels": list(clf.labels), "unsafe_labels": list(clf.unsafe_labels)})
        effectiveness += effectiveness_rows(p, cov)
        if attacks:
            eligible = [c is None or cov is None or c in cov for c in p.categories]
            idx = select_correct(p.y_true, p.y_pred, robust_k, rng=seed, eligible=eligible)
            images, labels = [], []
            for i in idx:
                try:
                    images.append(by_id[p.ids[i]].load())
                    labels.append(p.y_true[i])
                except (InvalidImageError, OSError):  # pragma: no cover - it was readable a moment ago
                    continue
            robustness += evaluate_robustness(clf, images, labels, attacks=attacks, eps=eps,
                                              pgd_steps=pgd_steps, seed=seed, on_step=on_attack)
    return {
        "dataset": dataset.summary(),
        "classifiers": described,
        "unreadable": unreadable,
        "effectiveness": effectiveness,
        "robustness": robustness,
        "settings": {"attacks": list(attacks), "eps": [float(e) for e in eps], "robust_k": robust_k,
                     "pgd_steps": pgd_steps, "seed": seed, "batch_size": batch_size},
    }


# -- superpixels ------------------------------------------------------------------------------------

def _label_map(name: str, labels: Any) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 2 or arr.size == 0:
        raise InvalidParameterError(f"{name} (shape {arr.shape}) must be a non-empty H×W label map")
    if not np.issubdtype(arr.dtype, np.integer):
        raise InvalidParameterError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _pair(superpixels: Any, ground_truth: Any) -> tuple[np.ndarray, np.ndarray]:
    sp, gt = _label_map("superpixels", superpixels), _label_map("ground_truth", ground_truth)
    if sp.shape != gt.shape:
        raise InvalidParameterError(
            f"superpixels (shape {sp.shape}) must have the same shape as ground_truth (shape {gt.shape})")
    return sp - sp.min(), gt - gt.min()


def label_boundaries(labels: np.ndarray) -> np.ndarray:
    """Boolean map of pixels whose right or lower neighbour has another label.

    Examples
    --------
    >>> label_boundaries(np.array([[0, 0, 1]])).tolist()
    [[False, True, False]]
    """
    labels = np.asarray(labels)
    b = np.zeros(labels.shape, dtype=bool)
    b[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    b[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return b


def _overlap(sp: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``m[i, j]``: pixels of superpixel ``i`` in ground-truth segment ``j``."""
    n_sp, n_g = int(sp.max()) + 1, int(gt.max()) + 1
    return np.bincount(sp.ravel() * n_g + gt.ravel(), minlength=n_sp * n_g).reshape(n_sp, n_g)


def boundary_recall(superpixels: Any, ground_truth: Any, *, tolerance: float = 2.0) -> float:
    """Fraction of ground-truth boundary pixels within ``tolerance`` pixels of a superpixel boundary.

    1.0 when the ground truth has no boundary.

    Examples
    --------
    >>> gt = np.repeat([[0, 0, 1, 1]], 4, axis=0)
    >>> boundary_recall(gt, gt), boundary_recall(np.zeros_like(gt), gt)
    (1.0, 0.0)
    """
    from scipy.ndimage import distance_transform_edt

    sp, gt = _pair(superpixels, ground_truth)
    gb = label_boundaries(gt)
    if not gb.any():
        return 1.0
    sb = label_boundaries(sp)
    if not sb.any():
        return 0.0
    dist = distance_transform_edt(~sb)
    return float((dist[gb] <= tolerance).mean())


def undersegmentation_error(superpixels: Any, ground_truth: Any) -> float:
    """Neubert & Protzel's undersegmentation error: the leak of superpixels across segments.

    For every superpixel and every ground-truth segment it overlaps, the smaller of the part
    inside and the part outside, summed and divided by the number of pixels; 0 is perfect.

    Examples
    --------
    >>> gt = np.repeat([[0, 0, 1, 1]], 4, axis=0)
    >>> undersegmentation_error(gt, gt), undersegmentation_error(np.zeros_like(gt), gt)
    (0.0, 1.0)
    """
    sp, gt = _pair(superpixels, ground_truth)
    m = _overlap(sp, gt)
    rest = m.sum(axis=1, keepdims=True) - m
    return float(np.minimum(m, rest)[m > 0].sum()) / sp.size


def achievable_segmentation_accuracy(superpixels: Any, ground_truth: Any) -> float:
    """ASA: the accuracy of labelling each superpixel with its best ground-truth segment; 1 is perfect.

    Examples
    --------
    >>> gt = np.repeat([[0, 0, 1, 1]], 4, axis=0)
    >>> achievable_segmentation_accuracy(gt, gt), achievable_segmentation_accuracy(np.zeros_like(gt), gt)
    (1.0, 0.5)
    """
    sp, gt = _pair(superpixels, ground_truth)
    return float(_overlap(sp, gt).max(axis=1).sum()) / sp.size


def superpixel_metrics(superpixels: Any, ground_truths: Sequence[Any], *,
                       tolerance: float = 2.0) -> tuple[float, float, float]:
    """Boundary recall, undersegmentation error and ASA, each averaged over several ground truths.

    (BSDS500 has several human segmentations per image.)

    Examples
    --------
    >>> gt = np.repeat([[0, 0, 1, 1]], 4, axis=0)
    >>> superpixel_metrics(gt, [gt, np.zeros_like(gt)])
    (1.0, 0.0, 1.0)
    """
    if not len(ground_truths):
        raise InvalidParameterError("ground_truths must hold at least one segmentation, got none")
    rows = [(boundary_recall(superpixels, g, tolerance=tolerance), undersegmentation_error(superpixels, g),
             achievable_segmentation_accuracy(superpixels, g)) for g in ground_truths]
    br, ue, asa = (float(np.mean(col)) for col in zip(*rows, strict=True))
    return br, ue, asa
