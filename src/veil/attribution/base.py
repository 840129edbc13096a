"""The attribution registry, the one entry point :func:`attribute`, and map helpers.

Every method is a function ``fn(image, classifier, **options) -> ndarray`` that
takes an H×W×3 ``uint8`` image and returns an H×W ``float32`` map in [0, 1]
explaining the classifier's *unsafe* score. Methods are registered as
:class:`AttributionMethod` entries that also say whether they need gradients, so
:func:`attribute` can check the classifier's abilities before any work is done.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from veil.classify.base import Classifier, GradientClassifier
from veil.errors import CapabilityError, InvalidImageError, InvalidParameterError, VeilError
from veil.registry import Registry

#: Name of the gradient-free method suggested when a classifier has no gradients.
GRADIENT_FREE_METHOD = "occlusion"


@dataclass(frozen=True)
class AttributionMethod:
    """A registered attribution method.

    Parameters
    ----------
    fn : callable
        ``fn(image, classifier, **options) -> (H, W) float32`` in [0, 1].
    requires_gradients : bool
        Whether the classifier must be a :class:`~veil.classify.GradientClassifier`.
    summary : str
        One line for CLI help and docs.
    """

    fn: Callable[..., np.ndarray]
    requires_gradients: bool
    summary: str = ""
    options: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        params = inspect.signature(self.fn).parameters.values()
        names = tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)
        object.__setattr__(self, "options", names)

    def __call__(self, image: np.ndarray, classifier: Any, **options: Any) -> np.ndarray:
        return self.fn(image, classifier, **options)


#: name → :class:`AttributionMethod`; CLI choices and parametrized tests come from here.
ATTRIBUTIONS: Registry[AttributionMethod] = Registry("attribution method")


def register_attribution(
    name: str, *, requires_gradients: bool, summary: str = ""
) -> Callable[[Callable[..., np.ndarray]], Callable[..., np.ndarray]]:
    """Decorator registering ``fn`` in :data:`ATTRIBUTIONS` under ``name``; returns ``fn`` unchanged."""

    def wrap(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        ATTRIBUTIONS.register(name, AttributionMethod(fn, requires_gradients, summary))
        return fn

    return wrap


def attribute(
    image: np.ndarray, classifier: Any, method: str = "fullgrad", **options: Any
) -> np.ndarray:
    """Attribution map of ``classifier``'s unsafe score on ``image``.

    Parameters
    ----------
    image : (H, W, 3) uint8 ndarray
        The image; never modified.
    classifier : Classifier
        Gradient methods (every method except ``occlusion``) need a
        :class:`~veil.classify.GradientClassifier`; ``occlusion`` works with any
        :class:`~veil.classify.Classifier`.
    method : str
        A name in :data:`ATTRIBUTIONS`: ``fullgrad`` (default), ``gradcam``,
        ``gradcam++``, ``xgradcam``, ``ablationcam`` or ``occlusion``.
    **options
        Keyword options of the method (e.g. ``batch_size`` for ``ablationcam``,
        ``patch_size``/``stride``/``fill`` for ``occlusion``).

    Returns
    -------
    (H, W) float32 ndarray
        Min-max normalised to [0, 1]; all zeros when the raw map is constant.

    Raises
    ------
    UnknownNameError
        ``method`` is not registered (the message lists valid names).
    CapabilityError
        A gradient method was asked of a classifier without gradients.
    InvalidImageError, InvalidParameterError
        Bad image or option.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from veil.classify.torch import TorchClassifier
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
    ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ...                           torch.nn.Linear(4, 2))
    >>> clf = TorchClassifier(net, ["safe", "unsafe"], ["unsafe"], input_size=32)
    >>> m = attribute(np.zeros((40, 50, 3), np.uint8), clf, "fullgrad")
    >>> m.shape, m.dtype
    ((40, 50), dtype('float32'))
    """
    entry = ATTRIBUTIONS.get(method)
    check_image(image)
    if entry.requires_gradients:
        if not isinstance(classifier, GradientClassifier):
            raise CapabilityError(
                f"attribution method {method!r} needs gradients, but classifier "
                f"{_describe(classifier)} is not a GradientClassifier (it lacks torch_module, "
                f"torch_input, torch_unsafe_score, cam_target_layers or attribution_to_image); "
                f"use method={GRADIENT_FREE_METHOD!r}, which needs only predict_proba"
            )
    elif not isinstance(classifier, Classifier):
        raise CapabilityError(
            f"attribution method {method!r} needs a Classifier (labels, config, predict_proba, "
            f"unsafe_score …), got {_describe(classifier)}"
        )
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        valid = ", ".join(entry.options) or "(none)"
        raise InvalidParameterError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for attribution method "
            f"{method!r}; valid options: {valid}"
        )
    out = entry(image, classifier, **options)
    return _check_output(out, image.shape[:2], method)


def combine(maps: Sequence[np.ndarray], how: Literal["max", "mean"] = "max") -> np.ndarray:
    """Combine several models' normalised attribution maps into one.

    Parameters
    ----------
    maps : sequence of (H, W) arrays in [0, 1]
        Maps from :func:`attribute`, one per model, all of the same shape.
    how : {"max", "mean"}
        ``max`` keeps evidence any model relies on; ``mean`` favours agreement.
        The result is not re-normalised, so ``mean`` keeps how much the models agree.

    Returns
    -------
    (H, W) float32 ndarray in [0, 1]

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[0.0, 1.0]], np.float32); b = np.array([[0.5, 0.0]], np.float32)
    >>> combine([a, b]).tolist(), combine([a, b], "mean").tolist()
    ([[0.5, 1.0]], [[0.25, 0.5]])
    """
    if how not in ("max", "mean"):
        raise InvalidParameterError(f"how must be 'max' or 'mean', got {how!r}")
    if isinstance(maps, np.ndarray) and maps.ndim == 2:
        raise InvalidParameterError("maps must be a sequence of 2-D maps, got a single 2-D array")
    arrays = [np.asarray(m, dtype=np.float32) for m in maps]
    if not arrays:
        raise InvalidParameterError("maps must contain at least one map, got none")
    shape = arrays[0].shape
    for i, a in enumerate(arrays):
        if a.ndim != 2 or a.shape != shape:
            raise InvalidParameterError(
                f"maps[{i}] (shape {a.shape}) must be 2-D with the shape of maps[0] {shape}"
            )
        if not np.all(np.isfinite(a)) or a.min() < 0.0 or a.max() > 1.0:
            raise InvalidParameterError(
                f"maps[{i}] must be finite and lie in [0, 1]; normalise it first "
                "(attribute() returns normalised maps)"
            )
    stack = np.stack(arrays)
    out = stack.max(axis=0) if how == "max" else stack.mean(axis=0)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def normalize(values: np.ndarray) -> np.ndarray:
    """Min-max normalise to ``float32`` in [0, 1]; a constant (or non-finite) map becomes zeros."""
    arr = np.asarray(values, dtype=np.float32)
    finite = np.isfinite(arr)
    if not finite.all():
        arr = np.where(finite, arr, 0.0).astype(np.float32)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if not hi > lo:
        return np.zeros(arr.shape, np.float32)
    return ((arr - lo) / (hi - lo)).astype(np.float32)


def check_image(image: Any) -> None:
    """Raise :class:`InvalidImageError` unless ``image`` is a non-empty H×W×3 ``uint8`` array."""
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(
            f"image must be an H×W×3 uint8 numpy array, got {type(image).__name__}; "
            "load it with veil.image.load_image"
        )
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise InvalidImageError(
            f"image (shape {image.shape}) must be a non-empty H×W×3 array; "
            "convert it with veil.image.as_rgb_uint8"
        )
    if image.dtype != np.uint8:
        raise InvalidImageError(
            f"image (dtype {image.dtype}) must be uint8; convert it with veil.image.as_rgb_uint8"
        )


def _check_output(out: np.ndarray, shape: tuple[int, int], method: str) -> np.ndarray:
    arr = np.asarray(out)
    if arr.shape != tuple(shape):
        # Only a faulty method or classifier.attribution_to_image gets here.
        raise VeilError(
            f"attribution method {method!r} returned shape {arr.shape}, expected {tuple(shape)}; "
            "check the classifier's attribution_to_image"
        )
    return np.clip(arr.astype(np.float32, copy=False), 0.0, 1.0)


def _describe(classifier: Any) -> str:
    name = getattr(classifier, "name", None)
    kind = type(classifier).__name__
    return f"{name!r} ({kind})" if isinstance(name, str) else kind
