"""Model-card formats: which loader a card JSON goes to, decided from the card itself.

Each format says which cards it describes (a test on the parsed JSON: its ``"type"`` or
``"format"`` key) and which function loads it; :func:`card_format` reads the card once and
asks the formats in ``order``. A card nothing else claims is a torch card (the default
``"format": "torch"``), whose loader gives the precise error for a malformed file.

A new classifier format registers here (see docs/architecture.md)::

    CARD_FORMATS.register("mine", CardFormat("mine", lambda c: c.get("type") == "mine",
                                             "my_package.cards:load_my_card", order=5))
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veil.classify.vlm import VLM_CARD_TYPES
from veil.errors import ModelLoadError
from veil.registry import Registry

__all__ = ["CARD_FORMATS", "CardFormat", "card_categories", "card_format", "peek_card"]


@dataclass(frozen=True)
class CardFormat:
    """One model-card format.

    Parameters
    ----------
    name : str
        Registry name (``"vlm"``, ``"clip"``, ``"onnx"``, ``"torch"``).
    describes : callable
        ``describes(card) -> bool`` on the parsed card (a dict).
    loader : str
        ``"module:function"`` taking ``(path, **kwargs)``; imported on first use, so heavy
        dependencies load only for the format in use.
    order : int
        Formats are asked in increasing order; the first that describes the card wins.
    """

    name: str
    describes: Callable[[Mapping[str, Any]], bool]
    loader: str
    order: int = 100

    def load(self, path: str, **kwargs: Any) -> Any:
        module, _, function = self.loader.partition(":")
        return getattr(importlib.import_module(module), function)(path, **kwargs)


#: name → :class:`CardFormat`.
CARD_FORMATS: Registry[CardFormat] = Registry("model card format")
CARD_FORMATS.register("vlm", CardFormat(
    "vlm", lambda c: c.get("type") in VLM_CARD_TYPES, "veil.classify.vlm:load_vlm_card", order=10))
CARD_FORMATS.register("clip", CardFormat(
    "clip", lambda c: isinstance(c.get("type"), str) and c["type"].startswith("clip-"),
    "veil.classify.clip:load_clip_card", order=20))
CARD_FORMATS.register("onnx", CardFormat(
    "onnx", lambda c: c.get("format") == "onnx", "veil.classify.onnx:load_onnx_card", order=30))
CARD_FORMATS.register("torch", CardFormat(
    "torch", lambda c: True, "veil.classify.card:load_model_card", order=1000))


def peek_card(path: str | Path) -> dict[str, Any] | None:
    """The card at ``path`` parsed once, or None when it is not a readable JSON object."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def card_format(card: Mapping[str, Any] | None) -> CardFormat:
    """The format that loads ``card`` (torch when nothing else claims it, or when it is None).

    Examples
    --------
    >>> card_format({"type": "vlm"}).name, card_format({"format": "onnx"}).name, card_format(None).name
    ('vlm', 'onnx', 'torch')
    """
    formats = sorted((CARD_FORMATS.get(n) for n in CARD_FORMATS.names()), key=lambda f: f.order)
    if card is not None:
        for fmt in formats:
            if fmt.describes(card):
                return fmt
    return CARD_FORMATS.get("torch")


def card_categories(specs: Sequence[str]) -> dict[str, dict[str, str]]:
    """``{model name: {label: category}}`` declared by the model cards among ``specs``.

    Registry names are skipped; no weights are loaded (each card's JSON is read once).

    Raises
    ------
    ModelLoadError
        For a ``.json`` spec that is not a readable JSON object.
    """
    out: dict[str, dict[str, str]] = {}
    for spec in specs:
        path = Path(spec)
        if not (str(spec).endswith(".json") and path.is_file()):
            continue
        card = peek_card(path)
        if card is None:
            raise ModelLoadError(f"model card {str(spec)!r}: cannot read it as a JSON object")
        cats = card.get("categories")
        if cats:
            out[str(card.get("name") or path.stem)] = dict(cats)
    return out
