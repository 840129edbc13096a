"""The moderation questions asked of a VLM: category definitions and the PerspectiveVision prompt.

Shared by the zero-shot classifier (:mod:`veil.classify.vlm`) and the moderator trainer
(:mod:`veil.moderator`), so that a model is asked at inference exactly what it learnt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from veil.errors import InvalidParameterError
from veil.taxonomy import get_category, taxonomy

__all__ = ["build_prompt", "category_definitions"]

_INTRO = (
    "You are a content moderator. Decide whether the image is unsafe under any of the "
    "following categories, and only these:"
)
_FORMAT = (
    'Answer exactly "Safety Status: Safe, Unsafe Category: None" if none applies, or '
    '"Safety Status: Unsafe, Unsafe Category: <category>" naming the one that applies.'
)


def category_definitions(categories: Sequence[str] | Mapping[str, str] | None = None) -> dict[str, str]:
    """``{name: definition}`` for category keys (definitions from :mod:`veil.taxonomy`) or a mapping.

    ``None`` gives UnsafeBench's eleven categories.

    >>> list(category_definitions(["violence"]))
    ['violence']
    """
    if categories is None:
        return {c.key: c.definition for c in taxonomy("unsafebench")}
    if isinstance(categories, Mapping):
        out = {str(k): str(v) for k, v in categories.items()}
    elif isinstance(categories, (str, bytes)):
        raise InvalidParameterError(
            f"categories must be a list of names or a {{name: definition}} mapping, got the string {categories!r}"
        )
    else:
        out = {}
        for name in categories:
            out[get_category(str(name)).key] = get_category(str(name)).definition
    if not out or not all(k.strip() and v.strip() for k, v in out.items()):
        raise InvalidParameterError(f"categories must be non-empty names with definitions, got {categories!r}")
    return out


def build_prompt(categories: Sequence[str], definitions: Mapping[str, str]) -> str:
    """The moderator prompt listing ``categories`` (in this order) with their definitions.

    >>> print(build_prompt(["spam"], {"spam": "unsolicited advertising"}).splitlines()[1])
    - spam: unsolicited advertising
    """
    if not categories:
        raise InvalidParameterError("build_prompt needs at least one category")
    lines = [_INTRO]
    for c in categories:
        if c not in definitions:
            raise InvalidParameterError(f"category {c!r} has no definition; known: {sorted(definitions)}")
        lines.append(f"- {c}: {definitions[c]}")
    lines.append(_FORMAT)
    return "\n".join(lines)
