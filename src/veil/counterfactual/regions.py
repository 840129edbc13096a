"""Region scores: how much attribution each segment carries, and where it lies."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from veil.errors import InvalidParameterError
from veil.image import check_labels
from veil.types import Region


def _check(attribution: np.ndarray, labels: np.ndarray) -> None:
    if attribution.shape != labels.shape:
        raise InvalidParameterError(
            f"attribution (shape {attribution.shape}) must have the same shape as labels (shape {labels.shape})"
        )
    check_labels(labels, integer=False)


def region_scores(attribution: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean attribution of each label ``0..labels.max()`` (0 for absent labels).

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([[0, 0, 1, 1]])
    >>> region_scores(np.array([[0.0, 0.2, 0.8, 1.0]]), labels)
    array([0.1, 0.9])
    """
    attribution = np.asarray(attribution, dtype=np.float64)
    labels = np.asarray(labels)
    _check(attribution, labels)
    n = int(labels.max()) + 1 if labels.size else 0
    sums = np.bincount(labels.ravel(), weights=attribution.ravel(), minlength=n)
    counts = np.bincount(labels.ravel(), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)


def rank_regions(attribution: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Region ids sorted by mean attribution, descending (ties: smaller id first), and the scores."""
    scores = region_scores(attribution, labels)
    counts = np.bincount(np.asarray(labels).ravel(), minlength=scores.size)
    present = np.flatnonzero(counts > 0)
    order = present[np.lexsort((present, -scores[present]))]
    return order.astype(np.int64), scores


def regions_lut(labels: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """Boolean table over the labels of ``labels`` (and ``ids``): true at each id of ``ids``.

    ``regions_lut(labels, ids)[labels]`` is :func:`regions_mask`; the table alone is what
    :func:`veil.counterfactual.styles.apply_labels` composes a candidate with.

    Examples
    --------
    >>> import numpy as np
    >>> regions_lut(np.array([[0, 1], [2, 2]]), [2, 4]).tolist()
    [False, False, True, False, True]
    """
    labels = np.asarray(labels)
    lut = np.zeros(max([int(labels.max()) if labels.size else 0, *(int(r) for r in ids)]) + 1, dtype=bool)
    if len(ids):
        lut[np.asarray(ids, dtype=np.int64)] = True
    return lut


def regions_mask(labels: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """Boolean H×W mask of the pixels whose label is in ``ids`` (a lookup table, not ``isin``).

    An id no pixel carries (a region lost when the label map was scaled down) hides nothing.
    """
    return regions_lut(labels, ids)[np.asarray(labels)]


def describe_regions(labels: np.ndarray, ids: Sequence[int], scores: np.ndarray) -> list[Region]:
    """:class:`~veil.types.Region` records (bbox, centroid, area) for ``ids`` in the given order.

    One pass over the pixels whatever the number of regions (an extent may hide dozens).

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([[0, 0, 1], [2, 2, 1]])
    >>> [(r.id, r.bbox, r.area_fraction) for r in describe_regions(labels, [1, 2, 7], np.ones(8))]
    [(1, (2, 0, 1, 2), 0.3333333333333333), (2, (0, 1, 2, 1), 0.3333333333333333)]
    """
    from scipy import ndimage as ndi

    labels = np.asarray(labels)
    h, w = labels.shape
    n = max([int(labels.max()) if labels.size else 0, *(int(r) for r in ids)]) + 1
    flat = labels.ravel().astype(np.int64)
    count = np.bincount(flat, minlength=n)
    xs = np.bincount(flat, weights=np.tile(np.arange(w, dtype=np.float64), h), minlength=n)
    ys = np.bincount(flat, weights=np.repeat(np.arange(h, dtype=np.float64), w), minlength=n)
    boxes = ndi.find_objects(labels.astype(np.int64) + 1, max_label=n)
    out = []
    for rank, rid in enumerate(ids):
        rid = int(rid)
        if rid < 0 or count[rid] == 0:
            continue
        sy, sx = boxes[rid]
        out.append(
            Region(
                id=rid,
                rank=rank,
                score=float(scores[rid]),
                area_fraction=int(count[rid]) / float(h * w),
                bbox=(int(sx.start), int(sy.start), int(sx.stop - sx.start), int(sy.stop - sy.start)),
                centroid=(float(xs[rid] / count[rid] + 0.5) / w, float(ys[rid] / count[rid] + 0.5) / h),
            )
        )
    return out
