"""Merge adjacent segments of similar colour into regions.

Superpixels are deliberately small and compact, so a thin object — a ring, a stroke,
a strap — is cut into several pieces that each carry some background. Joining
neighbours whose mean colours are close turns those pieces back into one region,
which is the unit the counterfactual search should obfuscate: all of the object
and little around it.

:func:`merge_similar` is the region-adjacency-graph threshold cut of scikit-image
(``skimage.graph.rag_mean_color(lab, labels, mode="distance")`` followed by
``skimage.graph.cut_threshold``) computed with array operations instead of a
networkx graph: the same labels, about a hundred times faster on a 240×320 image.
"""

from __future__ import annotations

import numpy as np

from veil.errors import InvalidParameterError
from veil.image import as_rgb_uint8, check_labels, dense_labels


def _adjacent_pairs(labels: np.ndarray, n: int) -> np.ndarray:
    """Unique ``(a, b)`` label pairs (``a < b``) that touch in the 8-neighbourhood."""
    codes = []
    for a, b in (
        (labels[:, :-1], labels[:, 1:]),      # horizontal
        (labels[:-1, :], labels[1:, :]),      # vertical
        (labels[:-1, :-1], labels[1:, 1:]),   # diagonal ↘
        (labels[:-1, 1:], labels[1:, :-1]),   # diagonal ↙
    ):
        diff = a != b
        lo, hi = np.minimum(a[diff], b[diff]), np.maximum(a[diff], b[diff])
        codes.append(lo.astype(np.int64) * n + hi)
    code = dense_labels(np.concatenate(codes))[0]  # (a count per code when the codes are dense, else a sort)
    return np.stack([code // n, code % n], axis=1)


def merge_similar(image: np.ndarray, labels: np.ndarray, threshold: float = 12.0) -> np.ndarray:
    """Join touching segments whose mean CIE Lab colours are closer than ``threshold``.

    Two segments end up in one region when a chain of 8-neighbouring segments links
    them, each step between mean colours (of the *original* segments) less than
    ``threshold`` apart in Euclidean Lab distance (the ΔE*ab of CIE 1976).

    Parameters
    ----------
    image : (H, W, 3) ndarray
        The image the labels segment (any dtype ``veil.image`` accepts). Not modified.
    labels : (H, W) int ndarray
        Segments, non-negative integers. Not modified.
    threshold : float
        Lab distance below which neighbours merge (0: no merging). About 2.3 is a
        just-noticeable difference; 10–15 joins the shading of one surface.

    Returns
    -------
    (H, W) int32 ndarray
        Region labels ``0..n-1``.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((4, 6, 3), np.uint8); img[:, 3:] = (200, 30, 30)
    >>> labels = np.array([[0, 1, 1, 2, 3, 3]] * 4)
    >>> merge_similar(img, labels, threshold=5.0)[0].tolist()
    [0, 0, 0, 1, 1, 1]
    """
    from veil.segment.bass import rgb_to_lab

    labels = np.asarray(labels)
    img = as_rgb_uint8(image)
    if labels.shape != img.shape[:2]:
        raise InvalidParameterError(
            f"labels (shape {labels.shape}) must have the image's shape {img.shape[:2]}"
        )
    check_labels(labels)
    if not np.isfinite(threshold) or threshold < 0:
        raise InvalidParameterError(f"threshold must be a finite number >= 0, got {threshold!r}")
    if labels.size == 0:
        return labels.astype(np.int32)
    _, flat = dense_labels(labels)
    n = int(flat.max()) + 1
    if threshold == 0 or n == 1:
        return flat.astype(np.int32)

    lab = rgb_to_lab(img).reshape(-1, 3)  # (skimage's rgb2lab, 2-3× faster)
    counts = np.bincount(flat.ravel(), minlength=n).astype(np.float64)
    sums = np.stack([np.bincount(flat.ravel(), weights=lab[:, c], minlength=n) for c in range(3)], axis=1)
    means = sums.astype(np.float64) / counts[:, None]

    pairs = _adjacent_pairs(flat, n)
    dist = np.linalg.norm(means[pairs[:, 0]] - means[pairs[:, 1]], axis=1)
    keep = pairs[dist < threshold]
    from scipy.sparse import coo_matrix  # scipy.sparse.csgraph: ~0.6 s to import, only when merging
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(keep)), (keep[:, 0], keep[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    # number regions by their first segment so the result does not depend on scipy's order
    _, first = np.unique(component, return_index=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[component][flat].astype(np.int32)
