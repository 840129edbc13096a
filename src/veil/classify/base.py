"""Classifier protocols.

A classifier is anything with ``name``, ``labels``, ``unsafe_labels``,
``threshold``, ``config`` and ``predict_proba(images) -> (N, K)`` plus
``unsafe_score(proba) -> (N,)``. Optional abilities are separate protocols
checked up front: :class:`GradientClassifier` (a differentiable torch path to
the unsafe score, needed by FullGrad and the Grad-CAM family) and
:class:`DetectorClassifier` (boxes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from veil.types import Detection  # re-exported: plain records live in veil.types (no torch)

if TYPE_CHECKING:  # pragma: no cover
    import torch


@runtime_checkable
class Classifier(Protocol):
    """The minimal classifier contract every stage relies on."""

    name: str
    labels: tuple[str, ...]
    unsafe_labels: tuple[str, ...]
    threshold: float
    config: dict[str, Any]

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Scores in [0, 1] for a batch of H×W×3 ``uint8`` images, shape ``(N, len(labels))``."""
        ...

    def unsafe_score(self, proba: np.ndarray) -> np.ndarray:
        """Reduce ``predict_proba`` output ``(N, K)`` to the image-level unsafe score ``(N,)``."""
        ...


@runtime_checkable
class GradientClassifier(Protocol):
    """A classifier whose unsafe score is differentiable through a torch module."""

    def torch_module(self) -> torch.nn.Module:
        """The network whose layers attribution methods hook (eval mode)."""
        ...

    def torch_input(self, image: np.ndarray) -> torch.Tensor:
        """Preprocess one H×W×3 ``uint8`` image into the network's ``(1, 3, h, w)`` input."""
        ...

    def torch_unsafe_score(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable unsafe score ``(N,)`` of a preprocessed batch ``x``."""
        ...

    def cam_target_layers(self) -> list[torch.nn.Module]:
        """Layers Grad-CAM-style methods read activations from (usually the last conv block)."""
        ...

    def attribution_to_image(self, attribution: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
        """Map an ``(h, w)`` map in network-input space back onto the ``(H, W)`` image."""
        ...


@runtime_checkable
class DetectorClassifier(Protocol):
    """A classifier that also localises what it found."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        ...


def scores_dict(labels: Sequence[str], proba_row: np.ndarray) -> dict[str, float]:
    """``{label: probability}`` rounded for JSON."""
    return {str(lbl): round(float(p), 6) for lbl, p in zip(labels, proba_row, strict=True)}


def checked_scores(name: str, what: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Validate a classifier's output at the boundary: the expected ``shape``, finite, in [0, 1].

    A model that returns NaN, infinities, negative or > 1 scores, or the wrong shape cannot
    judge the image; comparing such a score with a threshold would silently call it safe
    (``nan > 0.5`` is false). Values within 1e-6 of [0, 1] are clipped (float rounding).

    Raises
    ------
    ClassifierOutputError
        Naming the model (``name``), the output (``what``) and what was wrong.

    Examples
    --------
    >>> checked_scores("m", "probabilities", [[0.2, 0.8]], (1, 2)).tolist()
    [[0.2, 0.8]]
    """
    from veil.errors import ClassifierOutputError

    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ClassifierOutputError(f"model {name!r} returned {what} that are not numbers: {exc}") from None
    if arr.shape != shape:
        raise ClassifierOutputError(f"model {name!r} returned {what} of shape {arr.shape}, expected {shape}")
    if not np.all(np.isfinite(arr)):
        raise ClassifierOutputError(f"model {name!r} returned non-finite {what} (NaN or infinity)")
    if arr.size and (arr.min() < -1e-6 or arr.max() > 1 + 1e-6):
        raise ClassifierOutputError(
            f"model {name!r} returned {what} outside [0, 1] (range [{arr.min():.4g}, {arr.max():.4g}])")
    return np.clip(arr, 0.0, 1.0)


class CheckedClassifier:
    """A view of a classifier whose every output is validated with :func:`checked_scores`.

    Stages that call a model themselves (occlusion attribution) get this view, so a model that
    returns NaN or out-of-range scores fails the image wherever it is asked. Every other
    attribute is the wrapped classifier's.
    """

    def __init__(self, inner: Classifier) -> None:
        self._inner = inner

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        inner = self._inner
        return checked_scores(inner.name, "probabilities", inner.predict_proba(images), (len(images), len(inner.labels)))

    def unsafe_score(self, proba: np.ndarray) -> np.ndarray:
        proba = np.asarray(proba)
        return checked_scores(self._inner.name, "unsafe scores", self._inner.unsafe_score(proba), (proba.shape[0],))
