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
        from veil.classify.vlm import is_vlm_card, load_vlm_card

        if is_vlm_card(text):  # "type": "vlm" / "vlm-lora"
            return load_vlm_card(text, **kwargs)
        from veil.classify.clip import is_clip_card, load_clip_card

        if is_clip_card(text):  # "type": "clip-…": a CLIP backbone plus a head
            return load_clip_card(text, **kwargs)
        from veil.classify.card import is_onnx_card_file

        if is_onnx_card_file(text):  # "format": "onnx"
            from veil.classify.onnx import load_onnx_card

            return load_onnx_card(text, **kwargs)
        return load_model_card(text, **kwargs)
    return CLASSIFIERS.get(text)(**kwargs)


__all__ = [
    "CLASSIFIERS",
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
