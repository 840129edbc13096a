"""Obfuscation styles: blur, pixelate, solid fill.

A style turns the *whole* image into its obfuscated version once; a candidate
region set is then a masked select between the two, so the search never
re-filters and what it classifies is exactly what is delivered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from veil.errors import InvalidParameterError
from veil.image import as_rgb_uint8
from veil.registry import Registry

Style = Callable[..., np.ndarray]

#: name → style function ``fn(image, **options) -> fully obfuscated image``.
STYLES: Registry[Style] = Registry("obfuscation style")

#: Colour used for solid fills and fail-closed output.
FILL_COLOUR = (128, 128, 128)


@STYLES.decorator("blur")
def blur(image: np.ndarray, *, strength: float = 0.05, passes: int = 2) -> np.ndarray:
    """Gaussian blur with radius ``strength × max(H, W)`` (at least 4 px), applied ``passes`` times.

    The default erases detail the size of a face or a hand on any image size.
    """
    if strength <= 0:
        raise InvalidParameterError(f"strength must be positive, got {strength}")
    radius = max(4.0, float(strength) * max(image.shape[:2]))
    pil = Image.fromarray(image)
    for _ in range(max(1, int(passes))):
        pil = pil.filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(pil)


@STYLES.decorator("pixelate")
def pixelate(image: np.ndarray, *, blocks: int = 16) -> np.ndarray:
    """Mosaic with ``blocks`` cells along the longer side (each cell its mean colour)."""
    if blocks < 1:
        raise InvalidParameterError(f"blocks must be at least 1, got {blocks}")
    h, w = image.shape[:2]
    cell = max(1.0, max(h, w) / float(blocks))
    small = (max(1, round(w / cell)), max(1, round(h / cell)))
    pil = Image.fromarray(image).resize(small, Image.Resampling.BOX).resize((w, h), Image.Resampling.NEAREST)
    return np.asarray(pil)


@STYLES.decorator("fill")
def fill(image: np.ndarray, *, colour: tuple[int, int, int] = FILL_COLOUR) -> np.ndarray:
    """Solid fill with one colour (neutral grey by default)."""
    if len(colour) != 3 or any(not 0 <= int(c) <= 255 for c in colour):
        raise InvalidParameterError(f"colour must be three values in 0..255, got {colour}")
    out = np.empty_like(image)
    out[...] = np.asarray(colour, dtype=np.uint8)
    return out


def stylize(image: np.ndarray, style: str = "blur", **options: Any) -> np.ndarray:
    """Apply ``style`` to the whole image (input untouched)."""
    return STYLES.get(style)(as_rgb_uint8(image), **options)


def apply_mask(image: np.ndarray, styled: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``styled`` where ``mask`` is true, ``image`` elsewhere (a new array)."""
    return np.where(mask[..., None], styled, image)


def obfuscate(image: np.ndarray, mask: np.ndarray, style: str = "blur", **options: Any) -> np.ndarray:
    """Obfuscate the pixels of ``image`` under the boolean ``mask`` with ``style``.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((4, 4, 3), np.uint8); mask = np.zeros((4, 4), bool); mask[0, 0] = True
    >>> obfuscate(img, mask, "fill")[0, 0].tolist(), obfuscate(img, mask, "fill")[1, 1].tolist()
    ([128, 128, 128], [0, 0, 0])
    """
    image = as_rgb_uint8(image)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != image.shape[:2]:
        raise InvalidParameterError(
            f"mask (shape {mask.shape}) must have the image's shape {image.shape[:2]}"
        )
    return apply_mask(image, stylize(image, style, **options), mask)


def fully_obscured(image: np.ndarray) -> np.ndarray:
    """The fail-closed output: every pixel replaced by the neutral fill colour."""
    return fill(as_rgb_uint8(image))
