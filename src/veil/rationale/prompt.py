"""Conditioned instructions: a control code shapes what the vision-language model reads.

The paper's conditioned instruction (CIIT) puts the classifiers' verdict in
front of the moderator's question. How much of the control code goes in is
set by its ``strength`` (see :func:`veil.rationale.control.detail_for_strength`):
``0`` gives the plain question (the ablation), higher strengths add the
verdict, then category definitions and grounded attributes, then
probabilities and the obfuscated regions.

Examples
--------
>>> control = {"strength": 1.0, "unsafe": True, "statement": "the image contains self-harm",
...            "categories": [], "attributes": [], "regions": []}
>>> build_instruction("What is happening in the image?", control)
'Safety classifiers report: the image contains self-harm.\\nQuestion: What is happening in the image?\\nAnswer:'
>>> build_instruction("What is happening in the image?", control, strength=0)
'Question: What is happening in the image?\\nAnswer:'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from veil.errors import InvalidParameterError
from veil.rationale.control import detail_for_strength

__all__ = [
    "RATIONALE_QUESTION",
    "SAFE_QUESTION",
    "SYSTEM_PROMPT",
    "build_instruction",
    "build_qformer_instruction",
    "control_text",
    "describe_regions",
    "rationale_question",
]

#: Asked of the VLM when it should explain why an image was flagged.
RATIONALE_QUESTION = (
    "Explain to a content moderator why this image is unsafe for viewing, "
    "naming what in the image makes it unsafe and where it is."
)
#: Asked when the classifiers found the image safe.
SAFE_QUESTION = "Describe what is in the image."
#: System message for chat-style backends.
SYSTEM_PROMPT = (
    "You are an assistant to content moderators. Answer factually and concisely about what "
    "the image shows. Use the safety classifiers' report as guidance, but describe only what "
    "you can see."
)


def _detail(control: Mapping[str, Any], strength: float | None) -> str:
    if not isinstance(control, Mapping):
        raise InvalidParameterError(
            f"control must be a control-code dict from build_control, got {type(control).__name__}"
        )
    s = control.get("strength", 1.0) if strength is None else strength
    return detail_for_strength(s)


def _pct(a: float) -> str:
    pct = 100.0 * float(a)
    return f"{pct:.0f}%" if pct >= 1 else "under 1%"


def describe_regions(regions: list[Mapping[str, Any]]) -> str:
    """``"a small region in the upper left (about 3% of the image)"``, joined with commas.

    Regions of the same size in the same place are counted together.

    >>> describe_regions([{"size": "small", "place": "centre", "area_fraction": 0.04}])
    'a small region in the centre (about 4% of the image)'
    >>> describe_regions([{"size": "small", "place": "centre", "area_fraction": 0.04}] * 2
    ...                  + [{"size": "large", "place": "lower left", "area_fraction": 0.3}])
    '2 small regions in the centre (about 8% of the image together) and a large region in the lower left (about 30% of the image)'
    """
    groups: dict[tuple[str, str], list[float]] = {}
    for r in regions:
        groups.setdefault((str(r["size"]), str(r["place"])), []).append(float(r["area_fraction"]))
    parts = []
    for (size, place), areas in groups.items():
        if len(areas) == 1:
            parts.append(f"a {size} region in the {place} (about {_pct(areas[0])} of the image)")
        else:
            parts.append(
                f"{len(areas)} {size} regions in the {place} "
                f"(about {_pct(sum(areas))} of the image together)"
            )
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _attribute_phrase(att: Mapping[str, Any], with_score: bool) -> str:
    text = str(att["name"])
    if att.get("place"):
        text += f" in the {att['place']}"
    if with_score:
        text += f" (score {float(att['score']):.2f})"
    return text


def control_text(control: Mapping[str, Any], *, strength: float | None = None) -> str:
    """The conditioning context a control code contributes at ``strength`` (``""`` at 0).

    Only named categories (level ``contains`` or ``could_contain``) appear;
    a safe image contributes only that the classifiers found nothing unsafe.
    """
    detail = _detail(control, strength)
    if detail == "none":
        return ""
    if not control.get("unsafe"):
        return "Safety classifiers report: nothing unsafe was found in the image."
    lines = [f"Safety classifiers report: {control.get('statement') or 'the image could be unsafe for viewing'}."]
    if detail == "verdict":
        return lines[0]
    full = detail == "full"
    named = [c for c in control.get("categories", []) if c.get("level") != "low" and not c.get("generic")]
    for c in named:
        prob = f" (probability {float(c['probability']):.2f})" if full else ""
        lines.append(f"{c['title'][0].upper()}{c['title'][1:]}{prob} means {c['definition']}.")
    dets = [a for a in control.get("attributes", []) if a.get("kind") == "detection"]
    if dets:
        lines.append("Detected: " + "; ".join(_attribute_phrase(a, full) for a in dets) + ".")
    if full and control.get("regions"):
        lines.append("Obfuscated to make it safe: " + describe_regions(control["regions"]) + ".")
    return "\n".join(lines)


def build_instruction(
    question: str,
    control: Mapping[str, Any],
    *,
    strength: float | None = None,
    answer_cue: bool = True,
) -> str:
    """The conditioned instruction for the language model: context, question, answer cue.

    ``answer_cue=False`` leaves out the trailing ``Answer:`` for chat models, whose
    template already marks the assistant's turn.
    """
    if not isinstance(question, str) or not question.strip():
        raise InvalidParameterError(f"question must be a non-empty string, got {question!r}")
    ctx = control_text(control, strength=strength)
    body = f"Question: {question.strip()}" + ("\nAnswer:" if answer_cue else "")
    return f"{ctx}\n{body}" if ctx else body


def build_qformer_instruction(
    question: str,
    control: Mapping[str, Any],
    *,
    strength: float | None = None,
    max_chars: int = 400,
) -> str:
    """The (shorter) instruction InstructBLIP's Q-Former reads: verdict, categories, question.

    The Q-Former selects visual features, so it gets the verdict and the named
    categories' titles rather than the whole report; ``max_chars`` bounds it.
    """
    if not isinstance(question, str) or not question.strip():
        raise InvalidParameterError(f"question must be a non-empty string, got {question!r}")
    detail = _detail(control, strength)
    if detail == "none":
        return question.strip()
    head = control_text(control, strength=0.25)  # any non-zero strength: the verdict line
    if detail in ("categories", "full") and control.get("unsafe"):
        dets = [a["name"] for a in control.get("attributes", []) if a.get("kind") == "detection"]
        if dets:
            head += " Look for: " + ", ".join(dict.fromkeys(dets)) + "."
    text = f"{head} {question.strip()}"
    if len(text) > max_chars:
        keep = max_chars - len(question.strip()) - 1
        text = (head[: max(0, keep)].rstrip() + " " + question.strip()).strip()
    return text


def rationale_question(control: Mapping[str, Any]) -> str:
    """:data:`RATIONALE_QUESTION` for unsafe images, :data:`SAFE_QUESTION` for safe ones."""
    return RATIONALE_QUESTION if control.get("unsafe") else SAFE_QUESTION
