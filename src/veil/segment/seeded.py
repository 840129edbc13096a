"""What the seed growers (:mod:`veil.segment.grabcut`, :mod:`veil.segment.figures`) share: the
checks of an image and its seed mask, the small working copy they grow on, and the way back.
"""

from __future__ import annotations

import numpy as np

from veil.errors import InvalidParameterError


def checked(image: np.ndarray, seed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``image`` as an H×W×3 uint8 array and ``seed`` as a bool mask of its shape, or a clear error."""
    image, seed = np.asarray(image), np.asarray(seed).astype(bool)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InvalidParameterError(f"image must be an H×W×3 uint8 array, got {image.dtype} {image.shape}")
    if seed.shape != image.shape[:2]:
        raise InvalidParameterError(f"seed (shape {seed.shape}) must have the image's shape {image.shape[:2]}")
    return image, seed


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a bool mask (unchanged when it has the shape already)."""
    from veil.segment import resize_labels

    return mask if mask.shape == shape else resize_labels(mask.astype(np.uint8), shape).astype(bool)


def working_copy(image: np.ndarray, seed: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The image (area-averaged) and the seed (nearest) with their longer side at most ``size``."""
    import cv2

    h, w = seed.shape
    f = min(1.0, size / max(h, w))
    sh, sw = max(1, round(h * f)), max(1, round(w * f))
    small = image if (sh, sw) == (h, w) else cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    return small, resize_mask(seed, (sh, sw))
