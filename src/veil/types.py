"""Result types shared by the pipeline, the CLI, the report and the rationale."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - annotations only: `import veil` stays light
    import numpy as np


@dataclass(frozen=True)
class Detection:
    """One detected attribute: a label, its score and its box ``(x, y, width, height)`` in pixels."""

    label: str
    score: float
    box: tuple[int, int, int, int]

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": round(float(self.score), 6), "box": list(self.box)}


@dataclass
class ModelOutput:
    """One classifier's verdict on one image."""

    name: str
    proba: dict[str, float]
    unsafe_score: float
    unsafe: bool
    threshold: float
    unsafe_labels: tuple[str, ...] = ()
    detections: list[Detection] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "proba": self.proba,
            "unsafe_score": round(float(self.unsafe_score), 6),
            "unsafe": bool(self.unsafe),
            "threshold": self.threshold,
            "unsafe_labels": list(self.unsafe_labels),
            "detections": [d.to_dict() for d in self.detections],
        }


@dataclass
class Region:
    """One obfuscated region, in the order it was chosen, and why (``reason``).

    ``reason`` is ``"counterfactual"`` (the search needed it), ``"split"`` (a superpixel of a
    large region the search chose, kept because the verdict needs it), ``"margin"`` (added so
    the image is safe with a margin, also under light views), ``"closure"`` (a touching
    region that still carried evidence), ``"object"`` (a piece of the object a hidden region
    lies on, found class-agnostically with ``complete="grabcut"`` or ``"figures"``) or ``"tile"``
    (hidden by the second look: a tile of the delivered image a classifier still found unsafe,
    safeguarded on its own); see :mod:`veil.counterfactual.extent`.
    """

    id: int
    rank: int
    score: float
    area_fraction: float
    bbox: tuple[int, int, int, int]  # x, y, width, height
    centroid: tuple[float, float]  # x, y as fractions of width and height
    reason: str = "counterfactual"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": int(self.id),
            "rank": int(self.rank),
            "score": round(float(self.score), 6),
            "area_fraction": round(float(self.area_fraction), 6),
            "bbox": [int(v) for v in self.bbox],
            "centroid": [round(float(v), 4) for v in self.centroid],
            "reason": self.reason,
        }


@dataclass
class Result:
    """Everything :func:`veil.safeguard` knows about one image.

    ``image`` is the delivered image (identical to the input when safe),
    ``mask`` a boolean H×W map of obfuscated pixels. ``attribution`` and ``segments`` are at
    the working resolution of the search: the image's own for images up to
    ``SafeguardConfig.search_size`` pixels on the longer side, a smaller copy's for larger ones.
    """

    unsafe: bool
    scores: dict[str, float]
    models: list[ModelOutput]
    counterfactual_found: bool
    depth: int | None
    obfuscated_fraction: float
    scores_after: dict[str, float]
    models_after: list[ModelOutput]
    fail_closed: bool
    error: str | None
    image: np.ndarray
    mask: np.ndarray
    attribution: np.ndarray | None = None
    segments: np.ndarray | None = None
    regions: list[Region] = field(default_factory=list)
    n_evaluated: int = 0
    seed: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    rationale: dict[str, Any] | None = None
    note: str | None = None

    @property
    def detections(self) -> list[Detection]:
        return [d for m in self.models for d in m.detections]
