"""Segment Anything (SAM) as a segmenter: automatic masks → one label map.

Needs the optional ``segment-anything`` package (``pip install veil[sam]``) and a
checkpoint file on disk; Veil never downloads weights.

Examples
--------
>>> from veil.segment import segment
>>> labels = segment(image, "sam", checkpoint="sam_vit_b_01ec64.pth",
...                  model_type="vit_b")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from veil.errors import InvalidParameterError, ModelLoadError, require
from veil.segment import register_segmenter

__all__ = ["sam", "masks_to_labels"]

_MODEL_TYPES = ("vit_h", "vit_l", "vit_b", "default")
_CACHE: dict[tuple[str, str, str], Any] = {}
_LOCK = threading.Lock()


def masks_to_labels(
    masks: list[np.ndarray], shape: tuple[int, int], *, min_size: int = 1
) -> np.ndarray:
    """Turn possibly overlapping boolean masks into a full, non-overlapping label map.

    Masks are painted from the largest to the smallest, so a small mask lying on a
    larger one keeps its pixels (the usual SAM display order). Pixels no mask claims
    become regions of their own. Every output label is then one 4-connected region:
    a mask split in pieces gives one label per piece, and pieces smaller than
    ``min_size`` pixels are merged into the neighbour they share most border with.

    Parameters
    ----------
    masks : list of (H, W) bool ndarray
    shape : (H, W)
    min_size : int
        Smallest region kept on its own.

    Returns
    -------
    (H, W) int32 ndarray, labels 0..n-1.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> b = np.zeros((4, 4), bool); b[0, 0] = True
    >>> masks_to_labels([a, b], (4, 4)).tolist()
    [[0, 1, 1, 1], [1, 1, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]]
    """
    from veil.segment.bass import _connected

    h, w = int(shape[0]), int(shape[1])
    if h <= 0 or w <= 0:
        raise InvalidParameterError(f"shape must be a positive (H, W), got {shape!r}")
    if not isinstance(min_size, (int, np.integer)) or min_size < 1:
        raise InvalidParameterError(f"min_size must be an integer >= 1, got {min_size!r}")
    labels = np.zeros((h, w), dtype=np.int32)  # 0: unclaimed
    arrays = []
    for i, m in enumerate(masks):
        m = np.asarray(m, dtype=bool)
        if m.shape != (h, w):
            raise InvalidParameterError(
                f"masks[{i}] (shape {m.shape}) must have the image's shape {(h, w)}"
            )
        arrays.append(m)
    order = sorted(range(len(arrays)), key=lambda i: (-int(arrays[i].sum()), i))
    for rank, i in enumerate(order):
        labels[arrays[i]] = rank + 1
    return _connected(labels, int(min_size))


def _generator_model(checkpoint: str, model_type: str, device: str) -> Any:
    key = (os.path.realpath(checkpoint), model_type, device)
    with _LOCK:
        if key not in _CACHE:
            sa = require("segment_anything", "sam")
            try:
                model = sa.sam_model_registry[model_type](checkpoint=checkpoint)  # type: ignore[attr-defined]
                model.to(device)
            except (RuntimeError, KeyError, OSError, ValueError) as exc:
                raise ModelLoadError(
                    f"could not load SAM checkpoint {checkpoint!r} as model_type {model_type!r}: "
                    f"{exc}. Check that the file matches the model type."
                ) from exc
            _CACHE[key] = model
        return _CACHE[key]


@register_segmenter("sam", summary="Segment Anything masks (extra: sam)")
def sam(
    image: np.ndarray,
    *,
    attribution: np.ndarray | None = None,
    rng: Any = None,
    checkpoint: str | os.PathLike | None = None,
    model_type: str = "vit_b",
    device: str = "cpu",
    model: Any = None,
    points_per_side: int = 16,
    pred_iou_thresh: float = 0.88,
    stability_score_thresh: float = 0.95,
    min_size: int = 64,
) -> np.ndarray:
    """Segment Anything's automatic mask generator, flattened to a label map.

    Parameters
    ----------
    image : (H, W, 3) uint8 ndarray
    attribution, rng
        Ignored (SAM's automatic mode is deterministic for a given model).
    checkpoint : path
        Local SAM checkpoint (e.g. ``sam_vit_b_01ec64.pth``); required unless ``model``
        is given. Loaded models are cached per (checkpoint, model_type, device).
    model_type : {"vit_b", "vit_l", "vit_h", "default"}
        Architecture matching the checkpoint.
    device : str
        Torch device, e.g. ``"cpu"`` or ``"cuda"``.
    model : segment_anything.modeling.Sam, optional
        An already built model (skips loading).
    points_per_side, pred_iou_thresh, stability_score_thresh
        Passed to ``SamAutomaticMaskGenerator``.
    min_size : int
        Regions smaller than this many pixels are merged into a neighbour.

    Returns
    -------
    (H, W) int32 ndarray; every label is one 4-connected region.
    """
    sa = require("segment_anything", "sam")
    if model is None:
        if model_type not in _MODEL_TYPES:
            raise InvalidParameterError(
                f"model_type must be one of {', '.join(_MODEL_TYPES)}, got {model_type!r}"
            )
        if checkpoint is None:
            raise InvalidParameterError(
                "the 'sam' segmenter needs checkpoint=<path to a SAM .pth file> "
                "(e.g. sam_vit_b_01ec64.pth with model_type='vit_b'); Veil does not download weights"
            )
        path = os.fspath(checkpoint)
        if not os.path.isfile(path):
            raise InvalidParameterError(f"checkpoint {path!r} does not exist or is not a file")
        model = _generator_model(path, model_type, device)
    for name, val in (("points_per_side", points_per_side), ("min_size", min_size)):
        if not isinstance(val, (int, np.integer)) or val < 1:
            raise InvalidParameterError(f"{name} must be an integer >= 1, got {val!r}")
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise InvalidParameterError(
            f"image (shape {img.shape}, dtype {img.dtype}) must be an H×W×3 uint8 array"
        )
    generator = sa.SamAutomaticMaskGenerator(  # type: ignore[attr-defined]
        model,
        points_per_side=int(points_per_side),
        pred_iou_thresh=float(pred_iou_thresh),
        stability_score_thresh=float(stability_score_thresh),
    )
    import torch

    with torch.inference_mode():
        records = generator.generate(img.copy())
    masks = [r["segmentation"] for r in records]
    return masks_to_labels(masks, img.shape[:2], min_size=int(min_size))
