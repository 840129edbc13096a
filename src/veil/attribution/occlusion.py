"""Occlusion (Zeiler & Fergus, 2014): the drop in the unsafe score when a patch is hidden.

Gradient-free: it needs only ``predict_proba`` and ``unsafe_score``, so it works
with every :class:`~veil.classify.Classifier` (ONNX, remote, VLM …).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from veil.attribution.base import normalize, register_attribution
from veil.errors import InvalidParameterError

#: Scores are clipped into [_P_EPS, 1 - _P_EPS] before taking log-odds.
_P_EPS = 1e-6


def _fraction(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a number in (0, 1], got {value!r}") from None
    if not 0.0 < v <= 1.0:
        raise InvalidParameterError(
            f"{name} must be a fraction of the image's shorter side in (0, 1], got {value!r}"
        )
    return v


def _fill_image(image: np.ndarray, fill: Any, patch: int) -> np.ndarray:
    """The H×W×3 image whose pixels replace the occluded ones."""
    if isinstance(fill, str):
        if fill == "mean":
            mean = image.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
            return np.broadcast_to(mean, image.shape)
        if fill == "blur":
            # A radius of half the patch hides detail at the patch's scale.
            blurred = Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius=max(1.0, patch / 2)))
            return np.asarray(blurred, dtype=np.uint8)
    else:
        arr = np.asarray(fill)
        if arr.shape == (3,) and np.issubdtype(arr.dtype, np.number) and np.all((arr >= 0) & (arr <= 255)):
            return np.broadcast_to(arr.round().astype(np.uint8), image.shape)
    raise InvalidParameterError(
        f"fill must be 'mean', 'blur' or an RGB triple of values in [0, 255], got {fill!r}"
    )


def _starts(length: int, patch: int, stride: int) -> list[int]:
    """Window starts covering ``[0, length)`` with the last window flush with the end."""
    starts = list(range(0, max(length - patch, 0) + 1, stride))
    if starts[-1] != max(length - patch, 0):
        starts.append(length - patch)
    return starts


def _scores(classifier: Any, images: Sequence[np.ndarray], log_odds: bool) -> np.ndarray:
    proba = classifier.predict_proba(list(images))
    s = np.asarray(classifier.unsafe_score(proba), dtype=np.float64).reshape(-1)
    if s.shape != (len(images),):
        raise InvalidParameterError(
            f"classifier.unsafe_score returned {s.shape[0]} scores for {len(images)} images"
        )
    if log_odds:
        p = np.clip(s, _P_EPS, 1.0 - _P_EPS)
        s = np.log(p) - np.log1p(-p)
    return s


@register_attribution(
    "occlusion",
    requires_gradients=False,
    summary="Occlusion: unsafe-score drop when a sliding patch is hidden (any classifier)",
)
def occlusion(
    image: np.ndarray,
    classifier: Any,
    *,
    patch_size: float = 0.125,
    stride: float | None = None,
    fill: str | Sequence[float] = "mean",
    batch_size: int = 32,
    log_odds: bool = False,
) -> np.ndarray:
    """Occlusion map of the unsafe score; H×W ``float32`` in [0, 1].

    A square patch slides over the image; every occluded copy is scored (in
    batches, through ``predict_proba``) and each pixel gets the mean score drop
    of the patches covering it. Drops below zero (hiding the patch made the image
    *more* unsafe) are clipped to zero before normalising.

    Parameters
    ----------
    image : (H, W, 3) uint8 ndarray
    classifier : Classifier
        Only ``predict_proba`` and ``unsafe_score`` are used.
    patch_size : float
        Patch side as a fraction of the image's shorter side.
    stride : float, optional
        Step as a fraction of the shorter side; default ``patch_size / 2``. The
        number of forward passes grows as ``1 / stride²``.
    fill : {"mean", "blur"} or RGB triple
        What the patch shows: the image's mean colour, the image blurred with a
        Gaussian of radius half the patch (what blur obfuscation would show), or
        a fixed colour.
    batch_size : int
        Occluded images per ``predict_proba`` call (bounds memory).
    log_odds : bool
        Measure drops in the log-odds of the score, which does not saturate near 0 and 1.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from veil.classify.torch import TorchClassifier
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.AdaptiveAvgPool2d(1),
    ...                           torch.nn.Flatten())
    >>> clf = TorchClassifier(net, ["safe", "unsafe"], ["unsafe"], input_size=16)
    >>> occlusion(np.zeros((20, 24, 3), np.uint8), clf, patch_size=0.5).shape
    (20, 24)
    """
    frac = _fraction("patch_size", patch_size)
    step = _fraction("stride", frac / 2 if stride is None else stride)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InvalidParameterError(f"batch_size must be a positive integer, got {batch_size!r}")
    h, w = image.shape[:2]
    short = min(h, w)
    patch = max(1, int(round(frac * short)))
    step_px = max(1, int(round(step * short)))
    filler = _fill_image(image, fill, patch)
    ph, pw = min(patch, h), min(patch, w)
    windows = [(y, x) for y in _starts(h, ph, step_px) for x in _starts(w, pw, step_px)]

    def occluded(chunk: Sequence[tuple[int, int]]) -> Iterator[np.ndarray]:
        for y, x in chunk:
            img = image.copy()
            img[y : y + ph, x : x + pw] = filler[y : y + ph, x : x + pw]
            yield img

    base = _scores(classifier, [image], bool(log_odds))[0]
    drop_sum = np.zeros((h, w), np.float64)
    count = np.zeros((h, w), np.float64)
    for i in range(0, len(windows), int(batch_size)):
        chunk = windows[i : i + int(batch_size)]
        drops = base - _scores(classifier, list(occluded(chunk)), bool(log_odds))
        for (y, x), d in zip(chunk, drops, strict=True):
            drop_sum[y : y + ph, x : x + pw] += d
            count[y : y + ph, x : x + pw] += 1.0
    drop = np.maximum(drop_sum / np.maximum(count, 1.0), 0.0)
    return normalize(drop)
