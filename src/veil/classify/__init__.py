"""Classifiers: protocols, the registry of named backends and model-card loading.

``load_classifier(spec)`` accepts a registered name (``"nudenet"``, ``"opennsfw"``) or a
path to a model card JSON (``my_model.json``: a torchvision / timm checkpoint, or an
ONNX graph with ``"format": "onnx"``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from veil.classify.base import (
    Classifier,
    Detection,
    DetectorClassifier,
    GradientClassifier,
    scores_dict,
)
from veil.classify.card import load_model_card, read_model_card, write_model_card
from veil.classify.formats import CARD_FORMATS, CardFormat, card_format, peek_card
from veil.registry import Registry

#: name → factory returning a ready :class:`Classifier`.
CLASSIFIERS: Registry[Callable[..., Classifier]] = Registry("classifier")


def _nudenet(**kwargs: Any) -> Classifier:
    from veil.classify.nudenet import NudeNetClassifier

    return NudeNetClassifier(**kwargs)


def _opennsfw(**kwargs: Any) -> Classifier:
    from veil.classify.opennsfw import opennsfw

    return opennsfw(**kwargs)


CLASSIFIERS.register("nudenet", _nudenet)
CLASSIFIERS.register("opennsfw", _opennsfw)


def load_classifier(spec: str | Path | Classifier, **kwargs: Any) -> Classifier:
    """Return a classifier for a registry name, a model card path, or pass one through.

    Examples
    --------
    >>> clf = load_classifier("nudenet")  # doctest: +SKIP
    """
    if isinstance(spec, Classifier):
        return spec
    text = str(spec)
    if text.endswith(".json") or Path(text).is_file():
        # The card is read once to pick its format ("type": vlm / clip-…, "format": onnx / torch).
        return card_format(peek_card(text)).load(text, **kwargs)
    return CLASSIFIERS.get(text)(**kwargs)


__all__ = [
    "CARD_FORMATS",
    "CLASSIFIERS",
    "CardFormat",
    "card_format",
    "Classifier",
    "Detection",
    "DetectorClassifier",
    "GradientClassifier",
    "load_classifier",
    "load_model_card",
    "read_model_card",
    "write_model_card",
    "scores_dict",
]
