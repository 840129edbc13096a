"""Control codes: the classifiers' verdict on one image, in a form a rationale is built from.

The Conditional VLM conditions the vision-language model on the unsafe-image
classifiers. :func:`build_control` turns a :class:`veil.types.Result` into a
JSON-serialisable dict, the *control code*:

* per category its probability and level, following the paper's scheme —
  ``p >= 0.9``: "the image contains …" (level ``"contains"``),
  ``0.5 <= p < 0.9``: "the image could contain …" (``"could_contain"``),
  below: ``"low"``, never named; an unsafe image with no named category gets
  "the image could be unsafe for viewing"; a safe image gets no statement;
* grounded attributes: detections (NudeNet body parts, with their place) and
  the classifier labels behind the named categories;
* the regions that were actually obfuscated, with their place ("upper left",
  "centre", …), size and area;
* the conditioning ``strength`` in [0, 1] (0 = plain question, the paper's
  ablation) and the ``detail`` it implies for prompts.

A category is named only when its probability reaches both the lower level
(0.5) and the decision threshold of the model that reported it.

Examples
--------
>>> import numpy as np
>>> from veil.types import ModelOutput, Result
>>> m = ModelOutput("nsfw", {"neutral": 0.04, "porn": 0.96}, 0.96, True, 0.5, ("porn",))
>>> r = Result(True, {"nsfw": 0.96}, [m], False, None, 0.0, {}, [], False, None,
...            np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), bool))
>>> build_control(r)["statement"]
'the image contains sexually explicit content'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from veil.errors import InvalidParameterError
from veil.taxonomy import GENERIC, attribute_name, get_category, label_categories
from veil.types import ModelOutput, Result

__all__ = [
    "CONTROL_VERSION",
    "DEFAULT_LEVELS",
    "build_control",
    "category_probabilities",
    "detail_for_strength",
    "level_for",
    "place_name",
    "size_name",
    "validate_categories",
    "validate_strength",
]

CONTROL_VERSION = 1
#: (could-contain, contains) probability levels of the paper's scheme.
DEFAULT_LEVELS: tuple[float, float] = (0.5, 0.9)

_ROWS = ("upper", "middle", "lower")
_COLS = ("left", "centre", "right")
_PLACES = {
    ("upper", "left"): "upper left",
    ("upper", "centre"): "upper centre",
    ("upper", "right"): "upper right",
    ("middle", "left"): "centre left",
    ("middle", "centre"): "centre",
    ("middle", "right"): "centre right",
    ("lower", "left"): "lower left",
    ("lower", "centre"): "lower centre",
    ("lower", "right"): "lower right",
}


def place_name(x: float, y: float) -> str:
    """Name the cell of a 3×3 grid holding the point ``(x, y)`` given as fractions of width and height.

    Examples
    --------
    >>> place_name(0.1, 0.1), place_name(0.5, 0.5), place_name(0.9, 0.5), place_name(0.5, 0.95)
    ('upper left', 'centre', 'centre right', 'lower centre')
    """
    if not (np.isfinite(x) and np.isfinite(y)):
        raise InvalidParameterError(f"place coordinates must be finite, got ({x}, {y})")
    col = _COLS[min(2, max(0, int(float(x) * 3)))]
    row = _ROWS[min(2, max(0, int(float(y) * 3)))]
    return _PLACES[(row, col)]


def size_name(area_fraction: float) -> str:
    """``"small"`` (< 5 % of the image), ``"medium"`` (< 20 %) or ``"large"``.

    >>> size_name(0.01), size_name(0.1), size_name(0.5)
    ('small', 'medium', 'large')
    """
    a = float(area_fraction)
    return "small" if a < 0.05 else "medium" if a < 0.20 else "large"


def level_for(p: float, levels: tuple[float, float] = DEFAULT_LEVELS) -> str:
    """``"contains"``, ``"could_contain"`` or ``"low"`` for probability ``p``.

    >>> level_for(0.95), level_for(0.6), level_for(0.2)
    ('contains', 'could_contain', 'low')
    """
    low, high = levels
    return "contains" if p >= high else "could_contain" if p >= low else "low"


def validate_strength(strength: float) -> float:
    """Return ``strength`` as a float in [0, 1] or raise :class:`InvalidParameterError`."""
    try:
        s = float(strength)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"strength must be a number in [0, 1], got {strength!r}"
        ) from None
    if not 0.0 <= s <= 1.0 or not np.isfinite(s):
        raise InvalidParameterError(f"strength must lie in [0, 1], got {strength!r}")
    return s


def detail_for_strength(strength: float) -> str:
    """How much of the control code conditions a prompt at ``strength``.

    ``0`` → ``"none"`` (plain question, the paper's ablation); ``(0, 0.5)`` →
    ``"verdict"`` (the statement only); ``[0.5, 1)`` → ``"categories"`` (plus
    definitions and grounded attributes); ``1`` → ``"full"`` (plus
    probabilities and obfuscated regions).

    >>> [detail_for_strength(s) for s in (0, 0.3, 0.6, 1)]
    ['none', 'verdict', 'categories', 'full']
    """
    s = validate_strength(strength)
    if s == 0.0:
        return "none"
    if s < 0.5:
        return "verdict"
    if s < 1.0:
        return "categories"
    return "full"


def validate_categories(
    categories: Mapping[str, Mapping[str, str]] | None,
) -> dict[str, dict[str, str]]:
    """Check a ``{model_name: {label: category}}`` mapping and resolve category names to keys."""
    if categories is None:
        return {}
    if not isinstance(categories, Mapping):
        raise InvalidParameterError(
            "categories must map model names to {label: category} dicts, "
            f"got {type(categories).__name__}"
        )
    out: dict[str, dict[str, str]] = {}
    for model, mapping in categories.items():
        if mapping is None:  # a model card without "categories"
            continue
        if not isinstance(mapping, Mapping):
            raise InvalidParameterError(
                f"categories[{model!r}] must be a {{label: category}} dict, "
                f"got {type(mapping).__name__}"
            )
        out[str(model)] = {
            str(lbl): (get_category(str(cat)).key if cat is not None else None)  # type: ignore[misc]
            for lbl, cat in mapping.items()
        }
    return out


def _is_additive(m: ModelOutput) -> bool:
    """Whether a model's unsafe probabilities add up (softmax) or combine by maximum (multi-label).

    Read from how the model's own unsafe score relates to its unsafe labels (the sum for
    softmax heads such as model cards, the maximum for detectors such as NudeNet); without
    two unsafe labels to tell, a distribution summing to one counts as softmax.
    """
    vals = [float(m.proba.get(u, 0.0)) for u in m.unsafe_labels]
    if len(vals) >= 2 and sum(vals) - max(vals) > 1e-6:
        score = float(m.unsafe_score)
        return abs(score - sum(vals)) < abs(score - max(vals))
    return len(m.proba) > 1 and abs(sum(float(v) for v in m.proba.values()) - 1.0) < 0.02


def category_probabilities(
    models: list[ModelOutput],
    categories: Mapping[str, Mapping[str, str]] | None = None,
    *,
    levels: tuple[float, float] = DEFAULT_LEVELS,
) -> dict[str, dict[str, Any]]:
    """Per category: its probability (max over models) and whether a model lets it be named.

    Within a model whose unsafe score sums its unsafe labels (softmax) the
    probabilities of the labels mapped to one category add up; where it takes
    their maximum (multi-label detectors), and for detections, the maximum counts. Only a model's ``unsafe_labels`` contribute (all labels when it
    declares none).

    Returns
    -------
    dict
        ``{category: {"probability", "nameable", "models", "labels"}}``.
    """
    cards = validate_categories(categories)
    out: dict[str, dict[str, Any]] = {}
    for m in models:
        card = cards.get(m.name)
        candidates = list(m.unsafe_labels) if m.unsafe_labels else list(m.proba)
        mapping = label_categories(candidates, m.unsafe_labels, card)
        additive = _is_additive(m)
        per_cat: dict[str, float] = {}
        per_labels: dict[str, list[str]] = {}
        for label, cat in mapping.items():
            p = float(m.proba.get(label, 0.0))
            per_cat[cat] = per_cat.get(cat, 0.0) + p if additive else max(per_cat.get(cat, 0.0), p)
            per_labels.setdefault(cat, []).append(label)
        for det in m.detections:
            det_map = label_categories([det.label], m.unsafe_labels, card)
            if det.label in det_map:
                cat = det_map[det.label]
                per_cat[cat] = max(per_cat.get(cat, 0.0), float(det.score))
                if det.label not in per_labels.setdefault(cat, []):
                    per_labels[cat].append(det.label)
        naming = max(levels[0], float(m.threshold))
        for cat, p in per_cat.items():
            p = min(1.0, max(0.0, p))
            entry = out.setdefault(
                cat, {"probability": 0.0, "nameable": False, "models": [], "labels": []}
            )
            entry["probability"] = max(entry["probability"], p)
            if p >= naming:
                entry["nameable"] = True
            if p > 0:
                entry["models"].append(m.name)
                entry["labels"].extend(lb for lb in per_labels[cat] if lb not in entry["labels"])
    return out


def _r(x: float, n: int = 4) -> float:
    return round(float(x), n)


def _region_obfuscated(bbox: tuple[int, int, int, int], mask: np.ndarray | None) -> bool:
    if mask is None or not isinstance(mask, np.ndarray) or mask.ndim != 2:
        return True  # nothing to check against; trust the pipeline's list
    x, y, w, h = (int(v) for v in bbox)
    return bool(np.asarray(mask[max(0, y) : y + max(1, h), max(0, x) : x + max(1, w)]).any())


def _image_hw(result: Result) -> tuple[int, int] | None:
    for arr in (result.image, result.mask):
        if isinstance(arr, np.ndarray) and arr.ndim >= 2 and arr.shape[0] and arr.shape[1]:
            return int(arr.shape[0]), int(arr.shape[1])
    return None


def _statement(named: list[dict[str, Any]], unsafe: bool) -> str | None:
    if not unsafe:
        return None
    contains = [c["title"] for c in named if c["level"] == "contains"]
    could = [c["title"] for c in named if c["level"] == "could_contain"]
    parts = []
    if contains:
        parts.append("contains " + _join(contains))
    if could:
        parts.append("could contain " + _join(could))
    if not parts:
        return "the image could be unsafe for viewing"
    return "the image " + " and ".join(parts)


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def build_control(
    result: Result,
    *,
    strength: float = 1.0,
    categories: Mapping[str, Mapping[str, str]] | None = None,
    levels: tuple[float, float] = DEFAULT_LEVELS,
    max_attributes: int = 10,
) -> dict[str, Any]:
    """Build the JSON-serialisable control code of one pipeline result.

    Parameters
    ----------
    result : veil.types.Result
        The pipeline's verdict on one image; not modified.
    strength : float
        Conditioning strength in [0, 1]; 0 means the VLM sees the plain question.
    categories : dict, optional
        ``{model_name: {label: category}}``, e.g. from each classifier's
        ``config["categories"]``; wins over the built-in label mapping.
    levels : (float, float)
        The "could contain" and "contains" probability levels.
    max_attributes : int
        Keep at most this many grounded attributes (highest scores first).

    Returns
    -------
    dict
        ``version``, ``strength``, ``detail``, ``unsafe``, ``statement``,
        ``categories`` (list, named first), ``attributes``, ``regions``,
        ``models``, ``obfuscated_fraction``, ``counterfactual_found``, ``fail_closed``.

    Raises
    ------
    InvalidParameterError
        For a non-Result input, a strength outside [0, 1] or bad levels.
    """
    if not isinstance(result, Result):
        raise InvalidParameterError(
            f"result must be a veil.types.Result, got {type(result).__name__}"
        )
    s = validate_strength(strength)
    low, high = (float(v) for v in levels)
    if not 0.0 < low <= high <= 1.0:
        raise InvalidParameterError(f"levels must satisfy 0 < low <= high <= 1, got {levels!r}")
    if int(max_attributes) < 0:
        raise InvalidParameterError(f"max_attributes must be >= 0, got {max_attributes}")
    cards = validate_categories(categories)
    unsafe = bool(result.unsafe)

    cats: list[dict[str, Any]] = []
    if unsafe:
        probs = category_probabilities(result.models, cards, levels=(low, high))
        for key, info in probs.items():
            cat = get_category(key)
            level = level_for(info["probability"], (low, high)) if info["nameable"] else "low"
            cats.append(
                {
                    "category": key,
                    "title": cat.title,
                    "definition": cat.definition,
                    "probability": _r(info["probability"]),
                    "level": level,
                    "generic": key == GENERIC.key,
                    "models": list(info["models"]),
                    "labels": list(info["labels"]),
                }
            )
        order = {"contains": 0, "could_contain": 1, "low": 2}
        cats.sort(key=lambda c: (order[c["level"]], c["generic"], -c["probability"], c["category"]))
    named = [c for c in cats if c["level"] != "low"]
    specific = [c for c in named if not c["generic"]]
    # A generic "unsafe content" entry adds nothing once a real category is named.
    statement = _statement(specific if specific else named, unsafe)
    named_keys = {c["category"] for c in named}

    hw = _image_hw(result)
    attributes: list[dict[str, Any]] = []
    if unsafe:
        for m in result.models:
            card = cards.get(m.name)
            for det in m.detections:
                cat_map = label_categories([det.label], m.unsafe_labels, card)
                cat_key = cat_map.get(det.label)
                if cat_key not in named_keys:
                    continue
                x, y, w, h = (int(v) for v in det.box)
                att: dict[str, Any] = {
                    "kind": "detection",
                    "label": det.label,
                    "name": attribute_name(det.label),
                    "category": cat_key,
                    "score": _r(det.score),
                    "model": m.name,
                    "box": [x, y, w, h],
                }
                if hw is not None:
                    H, W = hw
                    att["place"] = place_name((x + w / 2) / W, (y + h / 2) / H)
                    att["area_fraction"] = _r(min(1.0, (w * h) / float(W * H)))
                attributes.append(att)
            naming = max(low, float(m.threshold))
            lab_map = label_categories(
                list(m.unsafe_labels) if m.unsafe_labels else list(m.proba), m.unsafe_labels, card
            )
            for label, cat_key in lab_map.items():
                p = float(m.proba.get(label, 0.0))
                if cat_key in named_keys and p >= naming:
                    attributes.append(
                        {
                            "kind": "label",
                            "label": label,
                            "name": attribute_name(label),
                            "category": cat_key,
                            "score": _r(p),
                            "model": m.name,
                        }
                    )
        attributes.sort(key=lambda a: (-a["score"], a["kind"], a["label"]))
        attributes = attributes[: int(max_attributes)]

    regions: list[dict[str, Any]] = []
    if unsafe:
        mask = result.mask if isinstance(result.mask, np.ndarray) else None
        for reg in sorted(result.regions, key=lambda r: r.rank):
            if not _region_obfuscated(reg.bbox, mask):
                continue
            cx, cy = (float(v) for v in reg.centroid)
            regions.append(
                {
                    "id": int(reg.id),
                    "rank": int(reg.rank),
                    "place": place_name(cx, cy),
                    "size": size_name(reg.area_fraction),
                    "area_fraction": _r(reg.area_fraction),
                    "bbox": [int(v) for v in reg.bbox],
                    "centroid": [_r(cx), _r(cy)],
                    "score": _r(reg.score),
                }
            )

    return {
        "version": CONTROL_VERSION,
        "strength": s,
        "detail": detail_for_strength(s),
        "unsafe": unsafe,
        "statement": statement,
        "categories": cats,
        "attributes": attributes,
        "regions": regions,
        "models": [
            {
                "name": m.name,
                "unsafe_score": _r(m.unsafe_score),
                "threshold": _r(m.threshold),
                "unsafe": bool(m.unsafe),
            }
            for m in result.models
        ],
        "obfuscated_fraction": _r(result.obfuscated_fraction) if unsafe else 0.0,
        "counterfactual_found": bool(result.counterfactual_found),
        "fail_closed": bool(result.fail_closed),
    }
