"""Moved to :mod:`veil.training.classifier` (the training engine lives in :mod:`veil.training`).

This path re-exports it so ``from veil.train import train`` keeps working.
"""

from veil.training.classifier import (  # noqa: F401  (re-exports, private helpers included for old callers)
    AUGMENTATIONS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SPLITS,
    Item,
    TrainingWarning,
    _ImageDataset,
    _keeps_last_batch,
    _metrics,
    _noise_margin,
    _one_cycle_lr,
    default_unsafe_labels,
    evaluate,
    find_lr,
    load_items,
    split_items,
    train,
    training_warnings,
)

__all__ = ["train", "evaluate", "find_lr", "load_items", "default_unsafe_labels", "split_items",
           "training_warnings", "TrainingWarning", "AUGMENTATIONS", "Item"]
