"""Segmenters: one signature, one registry.

Every segmenter is a function ``fn(image, *, attribution=None, rng=None, **options)``
taking an H×W×3 ``uint8`` image and returning an H×W ``int32`` label map from 0.
``attribution`` (H×W float32 in [0, 1]) lets guided segmenters follow the
classifier's evidence; others ignore it.

Examples
--------
>>> import numpy as np
>>> from veil.segment import segment
>>> img = np.zeros((32, 32, 3), np.uint8); img[:, 16:] = 255
>>> labels = segment(img, "slic", n_segments=2)
>>> labels.dtype, labels.shape
(dtype('int32'), (32, 32))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from veil.errors import InvalidParameterError
from veil.image import as_rgb_uint8, dense_labels
from veil.registry import Registry

Segmenter = Callable[..., np.ndarray]


@dataclass(frozen=True)
class SegmenterSpec:
    """A registered segmenter and what it promises.

    Parameters
    ----------
    fn : callable
        ``fn(image, *, attribution=None, rng=None, **options) -> (H, W)`` label map.
    default_merge : float
        The colour-merge threshold the pipeline applies after this segmenter when the user
        gives none (:func:`merge_similar`; 0: no merge).
    connected : bool
        Whether every label is one 4-connected region (the contract test checks it).
    summary : str
        One line for CLI help and docs.
    """

    fn: Segmenter
    default_merge: float = 0.0
    connected: bool = True
    summary: str = ""

    def __call__(self, image: np.ndarray, **options: Any) -> np.ndarray:
        return self.fn(image, **options)


#: name → :class:`SegmenterSpec`; the CLI's ``--segmentation`` choices and the merge defaults
#: come from here.
SEGMENTERS: Registry[SegmenterSpec] = Registry("segmentation")


def register_segmenter(
    name: str, *, default_merge: float = 0.0, connected: bool = True, summary: str = ""
) -> Callable[[Segmenter], Segmenter]:
    """Decorator registering ``fn`` in :data:`SEGMENTERS` under ``name``; returns ``fn`` unchanged."""

    def wrap(fn: Segmenter) -> Segmenter:
        SEGMENTERS.register(name, SegmenterSpec(fn, float(default_merge), connected, summary))
        return fn

    return wrap


def default_merge(method: str) -> float:
    """The merge threshold ``method`` is followed by when none is given.

    Examples
    --------
    >>> default_merge("bass"), default_merge("slic")
    (12.0, 0.0)
    """
    return SEGMENTERS.get(method).default_merge


def segment(
    image: np.ndarray,
    method: str = "slic",
    *,
    attribution: np.ndarray | None = None,
    rng: Any = None,
    **options: Any,
) -> np.ndarray:
    """Segment ``image`` with the registered ``method``; returns H×W ``int32`` labels from 0."""
    fn = SEGMENTERS.get(method)
    img = as_rgb_uint8(image)
    if attribution is not None:
        attribution = np.asarray(attribution, dtype=np.float32)
        if attribution.shape != img.shape[:2]:
            raise InvalidParameterError(
                f"attribution (shape {attribution.shape}) must have the image's shape {img.shape[:2]}"
            )
    labels = fn(img, attribution=attribution, rng=rng, **options)
    return relabel(labels)


def relabel(labels: np.ndarray) -> np.ndarray:
    """Renumber a label map to consecutive ``int32`` labels 0..n-1 (order of first appearance by value)."""
    labels = np.asarray(labels)
    _, inverse = dense_labels(labels)
    return inverse.astype(np.int32)


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map to ``shape`` (pixel centres map to pixel centres).

    Examples
    --------
    >>> import numpy as np
    >>> resize_labels(np.array([[0, 1], [2, 3]]), (4, 4))[:, 0].tolist()
    [0, 0, 2, 2]
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.size == 0:
        raise InvalidParameterError(f"labels (shape {labels.shape}) must be a non-empty H×W array")
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1:
        raise InvalidParameterError(f"shape must be two positive sizes, got {shape}")
    ys = np.minimum(((np.arange(h) + 0.5) * labels.shape[0] / h).astype(np.int64), labels.shape[0] - 1)
    xs = np.minimum(((np.arange(w) + 0.5) * labels.shape[1] / w).astype(np.int64), labels.shape[1] - 1)
    return labels[ys[:, None], xs[None, :]].astype(np.int32)


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise InvalidParameterError(f"{name} must be positive, got {value!r}")


@register_segmenter("slic", summary="scikit-image SLIC (the paper: 25 segments)")
def slic(
    image: np.ndarray,
    *,
    attribution: np.ndarray | None = None,
    rng: Any = None,
    n_segments: int = 25,
    compactness: float = 10.0,
    sigma: float = 1.0,
) -> np.ndarray:
    """scikit-image SLIC in Lab space (the paper: 25 segments)."""
    from skimage.segmentation import slic as _slic

    _check_positive("n_segments", n_segments)
    _check_positive("compactness", compactness)
    return _slic(image, n_segments=int(n_segments), compactness=float(compactness),
                 sigma=sigma, start_label=0, enforce_connectivity=True)


@register_segmenter("felzenszwalb", summary="Felzenszwalb graph segmentation")
def felzenszwalb(
    image: np.ndarray,
    *,
    attribution: np.ndarray | None = None,
    rng: Any = None,
    scale: float = 500.0,
    sigma: float = 0.5,
    min_size: int = 200,
) -> np.ndarray:
    """Felzenszwalb graph segmentation (the paper: scale 500, sigma 0.5, min size 200), labelled as
    scikit-image's (:func:`veil.segment.graph.felzenszwalb_labels`)."""
    from veil.segment.graph import felzenszwalb_labels

    _check_positive("scale", scale)
    # min_size is in pixels; shrink it on small images so they are not one segment.
    min_size = int(min(min_size, max(1, image.shape[0] * image.shape[1] // 50)))
    return felzenszwalb_labels(image, scale=float(scale), sigma=float(sigma), min_size=min_size)


@register_segmenter("watershed", summary="compact watershed on the Sobel gradient")
def watershed(
    image: np.ndarray,
    *,
    attribution: np.ndarray | None = None,
    rng: Any = None,
    markers: int = 25,
    compactness: float = 0.001,
) -> np.ndarray:
    """Compact watershed on the Sobel gradient (the paper: 25 markers, compactness 0.001)."""
    from skimage.color import rgb2gray
    from skimage.filters import sobel
    from skimage.segmentation import watershed as _ws

    _check_positive("markers", markers)
    gradient = sobel(rgb2gray(image))
    return _ws(gradient, markers=int(markers), compactness=float(compactness)) - 1


def _register_optional() -> None:
    # Segmenters living in their own modules register themselves on import.
    import importlib

    for mod in ("veil.segment.bass", "veil.segment.sam"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name is None or not mod.startswith(exc.name):
                raise


_register_optional()

from veil.segment.merge import merge_similar  # noqa: E402

__all__ = ["SEGMENTERS", "SegmenterSpec", "default_merge", "register_segmenter", "segment", "relabel", "resize_labels", "merge_similar", "slic", "felzenszwalb", "watershed"]
