"""The default rationale backend: offline, deterministic, built only from the control code.

It never looks at pixels, so it can only say what the classifiers and the
obfuscation search established: the named categories and their definitions,
the grounded attributes with their place, and the regions that were actually
obfuscated. It never names a category below its threshold, and says nothing
about categories for a safe image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from veil.errors import InvalidParameterError
from veil.rationale.prompt import describe_regions
from veil.taxonomy import category_for_question

__all__ = ["GroundedBackend", "compose_rationale"]


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _named(control: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in control.get("categories", []) if c.get("level") in ("contains", "could_contain")]


def _verdict_sentence(control: Mapping[str, Any]) -> str:
    specific = [c for c in _named(control) if not c.get("generic")]
    if not specific:
        worst = max(control.get("models", []), key=lambda m: m["unsafe_score"], default=None)
        tail = ""
        if worst is not None:
            tail = (
                f" ({worst['name']} gave an unsafe score of {worst['unsafe_score']:.2f}"
                f" against a threshold of {worst['threshold']:.2f})"
            )
        return f"This image was flagged as unsafe: it could be unsafe for viewing{tail}."
    contains = [f"{c['title']} (probability {c['probability']:.2f})" for c in specific if c["level"] == "contains"]
    could = [f"{c['title']} (probability {c['probability']:.2f})" for c in specific if c["level"] == "could_contain"]
    parts = []
    if contains:
        parts.append("it contains " + _join(contains))
    if could:
        parts.append("it could contain " + _join(could))
    return "This image was flagged as unsafe because " + " and ".join(parts) + "."


def _definitions(control: Mapping[str, Any]) -> list[str]:
    return [
        f"{_cap(c['title'])} means {c['definition']}."
        for c in _named(control)
        if not c.get("generic")
    ]


def _attribute_sentences(control: Mapping[str, Any]) -> list[str]:
    out = []
    dets = [a for a in control.get("attributes", []) if a.get("kind") == "detection"]
    if dets:
        phrases = []
        for a in dets:
            p = a["name"]
            if a.get("place"):
                p += f" in the {a['place']}"
            phrases.append(f"{p} (score {a['score']:.2f})")
        out.append("The detector found " + _join(phrases) + ".")
    seen = {(a["model"], a["label"]) for a in dets}  # a detection already said it
    labels = [
        a
        for a in control.get("attributes", [])
        if a.get("kind") == "label" and (a["model"], a["label"]) not in seen
    ]
    by_model: dict[str, list[str]] = {}
    for a in labels:
        by_model.setdefault(a["model"], []).append(f"“{a['name']}” ({a['score']:.2f})")
    for model, phrases in by_model.items():
        out.append(f"The {model} classifier rated it {_join(phrases)}.")
    return out


def _region_sentence(control: Mapping[str, Any]) -> str:
    regions = control.get("regions", [])
    if regions:
        if len(regions) == 1:
            return f"To make it safe, Veil obfuscated {describe_regions(regions)}."
        total = sum(float(r["area_fraction"]) for r in regions)
        return (
            f"To make it safe, Veil obfuscated {len(regions)} regions covering about "
            f"{100 * total:.0f}% of the image: {describe_regions(regions)}."
        )
    if control.get("fail_closed"):
        return "No minimal obfuscation made it safe, so the image was withheld."
    return "No region was obfuscated."


def compose_rationale(control: Mapping[str, Any]) -> str:
    """The grounded rationale for a control code.

    Examples
    --------
    >>> compose_rationale({"unsafe": False, "models": [], "categories": []})
    'The image was judged safe: no classifier reached its unsafe threshold, so nothing was obfuscated.'
    """
    if not isinstance(control, Mapping) or "unsafe" not in control:
        raise InvalidParameterError(
            "control must be a control-code dict from veil.rationale.build_control, "
            f"got {type(control).__name__}"
        )
    if not control["unsafe"]:
        return (
            "The image was judged safe: no classifier reached its unsafe threshold, "
            "so nothing was obfuscated."
        )
    sentences = [_verdict_sentence(control), *_definitions(control), *_attribute_sentences(control)]
    sentences.append(_region_sentence(control))
    return " ".join(sentences)


def _answer(question: str, control: Mapping[str, Any]) -> str:
    cat_key = category_for_question(question)
    if not control.get("unsafe"):
        if cat_key is None:
            return (
                "The grounded backend does not describe scenes; the safety classifiers "
                "found nothing unsafe in the image."
            )
        return "No. The safety classifiers found nothing unsafe in the image."
    named = {c["category"]: c for c in _named(control)}
    if cat_key is None:
        summary = control.get("statement") or "the image could be unsafe for viewing"
        atts = _attribute_sentences(control)
        regions = _region_sentence(control)
        return " ".join(
            [
                "The grounded backend does not describe scenes; the safety classifiers report "
                f"that {summary}.",
                *atts,
                regions,
            ]
        )
    if cat_key in named:
        c = named[cat_key]
        verb = "Yes, the image contains" if c["level"] == "contains" else "Possibly: the image could contain"
        dets = [
            a["name"] + (f" in the {a['place']}" if a.get("place") else "")
            for a in control.get("attributes", [])
            if a.get("kind") == "detection" and a.get("category") == cat_key
        ]
        extra = f"; the detector found {_join(dets)}" if dets else ""
        return f"{verb} {c['title']} (probability {c['probability']:.2f}){extra}."
    # Never name a category the classifiers did not report, even when asked about it.
    return "No. The safety classifiers found no evidence of this in the image."


class GroundedBackend:
    """Compose rationales and answers from the control code alone (no model, no network).

    Examples
    --------
    >>> b = GroundedBackend()
    >>> b.answer(None, {"unsafe": False}, ["Is there any aggressive behavior shown in the image?"])
    ['No. The safety classifiers found nothing unsafe in the image.']
    """

    name = "grounded"

    def __init__(self) -> None:
        pass

    def explain(self, image: np.ndarray | None, control: Mapping[str, Any]) -> str:
        return compose_rationale(control)

    def answer(
        self, image: np.ndarray | None, control: Mapping[str, Any], questions: Sequence[str]
    ) -> list[str]:
        if not isinstance(control, Mapping) or "unsafe" not in control:
            raise InvalidParameterError(
                f"control must be a control-code dict, got {type(control).__name__}"
            )
        return [_answer(q, control) for q in questions]
