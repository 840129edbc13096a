"""PerspectiveVision-style training prompts: random category subsets, negatives, balance.

Each prompt lists a shuffled random subset of category names with their
definitions and asks for ``Safety Status: …, Unsafe Category: …``:

* a **safe** image is asked about a subset that includes its own (collection)
  category → ``Safety Status: Safe, Unsafe Category: None``;
* an **unsafe** image is asked about a subset that includes its category →
  ``Safety Status: Unsafe, Unsafe Category: <category>`` (a *positive*);
* **negative sampling**: an unsafe image is also asked, with probability
  ``negative_rate``, only about *other* categories → ``Safe`` (the model must
  answer about the listed categories, not about "anything unsafe");
* **balance**: positives are oversampled (each copy with a fresh subset and
  order) until there are as many ``Unsafe`` targets as ``Safe`` ones.

Everything random comes from ``rng``; the same seed gives the same prompts.

Examples
--------
>>> recs = [{"safety_label": "unsafe", "category": "violence"},
...         {"safety_label": "safe", "category": "hate"}]
>>> s = sample_prompts(recs, categories=["hate", "violence", "spam"], rng=0)
>>> sorted({x.target for x in s})[0]
'Safety Status: Safe, Unsafe Category: None'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from veil.errors import InvalidParameterError, UnknownNameError
from veil.taxonomy import get_category, normalize_category
from veil.vlm.parse import format_perspective
from veil.vlm.prompts import build_prompt, category_definitions  # re-exported

__all__ = [
    "Sample",
    "build_prompt",
    "category_definitions",
    "normalize_safety_label",
    "resolve_category",
    "sample_prompts",
]

@dataclass(frozen=True)
class Sample:
    """One training prompt.

    Attributes
    ----------
    index : int
        Row of the record it was built from.
    categories : tuple of str
        Category names listed in the prompt, in prompt order.
    prompt : str
        The user message (without the model's chat formatting).
    target : str
        The PerspectiveVision answer to learn.
    label : str
        ``"safe"`` or ``"unsafe"``: the target's status.
    category : str or None
        The target's unsafe category.
    kind : str
        ``"safe"`` (safe image), ``"positive"`` (unsafe image, own category listed)
        or ``"negative"`` (unsafe image, own category left out).
    """

    index: int
    categories: tuple[str, ...]
    prompt: str
    target: str
    label: str
    category: str | None
    kind: str


def normalize_safety_label(value: Any) -> str:
    """``"safe"`` / ``"unsafe"`` from UnsafeBench-style labels (``"Safe"``, ``1``, ``True``, ``"unsafe"``).

    >>> normalize_safety_label(1), normalize_safety_label("Safe")
    ('unsafe', 'safe')
    """
    if isinstance(value, (bool, np.bool_)):
        return "unsafe" if value else "safe"
    if isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return "unsafe" if int(value) == 1 else "safe"
    text = str(value).strip().lower()
    if text in ("safe", "0", "false", "no"):
        return "safe"
    if text in ("unsafe", "1", "true", "yes", "not safe"):
        return "unsafe"
    raise InvalidParameterError(f"safety_label must be safe/unsafe or 0/1, got {value!r}")


def resolve_category(name: Any, names: Sequence[str]) -> str:
    """The entry of ``names`` that ``name`` means (exact, normalized, or via a taxonomy alias)."""
    text = str(name)
    if text in names:
        return text
    norm = {normalize_category(n): n for n in names}
    if normalize_category(text) in norm:
        return norm[normalize_category(text)]
    try:
        key = get_category(text).key
    except UnknownNameError:
        key = None
    if key is not None and key in names:
        return key
    raise InvalidParameterError(f"category {text!r} is not one of the prompt categories {list(names)}")


def _range(n_categories: int | tuple[int, int] | None, total: int) -> tuple[int, int]:
    if n_categories is None:
        return 1, total
    lo, hi = (n_categories, n_categories) if isinstance(n_categories, int) else n_categories
    if not 1 <= int(lo) <= int(hi):
        raise InvalidParameterError(f"n_categories must be k >= 1 or (lo, hi) with 1 <= lo <= hi, got {n_categories!r}")
    if int(lo) > total:
        raise InvalidParameterError(f"n_categories asks for at least {lo} categories per prompt, "
                                    f"but the taxonomy has only {total}")
    return int(lo), min(int(hi), total)


def sample_prompts(
    records: Sequence[Mapping[str, Any]],
    *,
    categories: Sequence[str] | Mapping[str, str] | None = None,
    n_categories: int | tuple[int, int] | None = None,
    negative_rate: float = 0.5,
    balance: bool = True,
    rng: np.random.Generator | int | None = None,
) -> list[Sample]:
    """Build the training prompts for ``records`` (see the module docstring).

    Parameters
    ----------
    records : sequence of mappings
        Each with ``safety_label`` (safe/unsafe or 0/1) and ``category`` (a name in
        ``categories``, or a taxonomy alias of one).
    categories : list of names or {name: definition}, optional
        The categories prompts draw from; default UnsafeBench's eleven.
    n_categories : int or (lo, hi), optional
        How many categories a prompt lists, drawn uniformly in ``[lo, hi]``; default
        ``(1, len(categories))``.
    negative_rate : float
        Probability in [0, 1] that an unsafe image also yields a negative prompt.
    balance : bool
        Oversample positives until ``Unsafe`` targets are at least as many as ``Safe`` ones.
    rng : Generator, int or None
        Source of randomness.

    Returns
    -------
    list of Sample
        Shuffled.
    """
    defs = category_definitions(categories)
    names = list(defs)
    if not 0.0 <= float(negative_rate) <= 1.0:
        raise InvalidParameterError(f"negative_rate must lie in [0, 1], got {negative_rate}")
    lo, hi = _range(n_categories, len(names))
    gen = np.random.default_rng(rng)
    rows: list[tuple[int, str, str]] = []
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping) or "safety_label" not in rec or "category" not in rec:
            raise InvalidParameterError(f"record {i} needs 'safety_label' and 'category', got {rec!r}")
        try:
            cat = resolve_category(rec["category"], names)
            lab = normalize_safety_label(rec["safety_label"])
        except InvalidParameterError as exc:
            raise InvalidParameterError(f"record {i}: {exc}") from None
        rows.append((i, lab, cat))
    if not rows:
        raise InvalidParameterError("sample_prompts needs at least one record")

    def subset(own: str, include: bool) -> tuple[str, ...]:
        pool = [n for n in names if n != own]
        k = int(gen.integers(lo, hi + 1))
        if include:
            picked = [own, *gen.choice(pool, size=min(k - 1, len(pool)), replace=False).tolist()]
        else:
            picked = gen.choice(pool, size=min(k, len(pool)), replace=False).tolist()
        return tuple(picked[j] for j in gen.permutation(len(picked)))

    def make(i: int, own: str, kind: str) -> Sample:
        cats = subset(own, kind != "negative")
        unsafe = kind == "positive"
        return Sample(i, cats, build_prompt(cats, defs), format_perspective(own if unsafe else None),
                      "unsafe" if unsafe else "safe", own if unsafe else None, kind)

    out: list[Sample] = []
    positives: list[tuple[int, str]] = []
    for i, lab, cat in rows:
        if lab == "safe":
            out.append(make(i, cat, "safe"))
            continue
        positives.append((i, cat))
        out.append(make(i, cat, "positive"))
        if len(names) > 1 and gen.random() < float(negative_rate):
            out.append(make(i, cat, "negative"))
    if balance and positives:
        n_safe = sum(s.label == "safe" for s in out)
        deficit = n_safe - len(positives)
        for j in range(max(0, deficit)):
            i, cat = positives[j % len(positives)]  # round robin: every unsafe image equally
            out.append(make(i, cat, "positive"))
    return [out[j] for j in gen.permutation(len(out))]
