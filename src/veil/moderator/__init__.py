"""VLM moderators: strict answer parsing, PerspectiveVision-style prompts and LoRA training.

* :mod:`veil.moderator.parse` — answers → ``safe`` / ``unsafe`` / ``unsure`` (now in :mod:`veil.vlm.parse`);
* :mod:`veil.moderator.sampler` — training prompts over random category subsets;
* :mod:`veil.moderator.train` — LoRA fine-tuning (``veil train-moderator``).

The zero-shot classifier itself is :class:`veil.classify.vlm.VLMClassifier`.
Nothing here imports torch or transformers until a model is trained or loaded.
"""

from __future__ import annotations

from veil.moderator.sampler import Sample, build_prompt, sample_prompts
from veil.vlm.parse import (
    LABELS,
    Verdict,
    format_perspective,
    majority_vote,
    parse_answer,
    parse_perspective,
)

__all__ = [
    "LABELS",
    "Sample",
    "Verdict",
    "build_prompt",
    "format_perspective",
    "majority_vote",
    "parse_answer",
    "parse_perspective",
    "sample_prompts",
]
