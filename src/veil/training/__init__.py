"""The training engine: data readers, progress, and the trainers built on them.

* :mod:`veil.training.data` — the one JSONL / CSV manifest reader (also used by
  :mod:`veil.bench.datasets`, :mod:`veil.moderator.train` and :mod:`veil.rationale.train_vlm`);
* :mod:`veil.training.progress` — the one progress display (Rich);
* :mod:`veil.training.loop` — the one loop (:func:`~veil.training.loop.fit`: epochs, evaluation,
  early stopping, checkpoints, the resume rule) and :func:`~veil.training.loop.optimizer_step`;
* :mod:`veil.training.cards` — the one card writer (atomic, validated, common sections);
* :mod:`veil.training.classifier` — ``veil train``: fine-tune a torchvision / timm classifier
  and write its model card (formerly ``veil.train``, which still re-exports it).

Nothing here imports torch until a model is trained.
"""

from __future__ import annotations

from veil.training.data import read_csv, read_jsonl, read_manifest
from veil.training.progress import make_progress

__all__ = ["make_progress", "read_csv", "read_jsonl", "read_manifest"]
