"""Moved to :mod:`veil.vlm.parse` (the classifier and the trainer share it); this path re-exports it."""

from veil.vlm.parse import (
    LABELS,
    Verdict,
    format_perspective,
    majority_vote,
    parse_answer,
    parse_perspective,
)

__all__ = ["LABELS", "Verdict", "format_perspective", "majority_vote", "parse_answer", "parse_perspective"]
