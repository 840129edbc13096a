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

from veil._jit import LazyKernels
from veil.errors import InvalidParameterError
from veil.image import as_rgb_uint8
from veil.registry import Registry

_kernel = LazyKernels(globals())

Style = Callable[..., np.ndarray]

#: name → style function ``fn(image, **options) -> fully obfuscated image``.
STYLES: Registry[Style] = Registry("obfuscation style")

#: Colour used for solid fills and fail-closed output.
FILL_COLOUR = (128, 128, 128)


#: The blur works on a copy shrunk so that its radius is still at least this many pixels.
BLUR_MIN_RADIUS = 8.0


@STYLES.decorator("blur")
def blur(image: np.ndarray, *, strength: float = 0.05, passes: int = 2, full_resolution: bool = False) -> np.ndarray:
    """Gaussian blur with radius ``strength × max(H, W)`` (at least 4 px), applied ``passes`` times.

    The default erases detail the size of a face or a hand on any image size. A radius of 16 pixels
    or more is applied to a copy shrunk ``⌊radius / 8⌋`` times (box-averaged; the radius shrunk alike)
    and enlarged back bilinearly, which is what a blur this wide keeps anyway: on BSDS500 photos of
    640 to 1,925 pixels it differs from the blur at full resolution by under half a grey level on
    average (at most 18, near the border, where the two extend the edge differently), and a
    1,925-pixel photo takes about 22 ms instead of 200–220 (``bench/shared_steps.py``).
    ``full_resolution=True`` blurs the image itself.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((400, 600, 3), np.uint8); img[:, 300:] = 255
    >>> out = blur(img)  # radius 30 px: a 3 times shrunk copy
    >>> out.shape, int(out[200, 0, 0]), int(out[200, 599, 0]), 100 < int(out[200, 300, 0]) < 160
    ((400, 600, 3), 0, 255, True)
    >>> int(np.abs(out.astype(int) - blur(img, full_resolution=True)).max()) <= 4
    True
    """
    if strength <= 0:
        raise InvalidParameterError(f"strength must be positive, got {strength}")
    if not isinstance(full_resolution, (bool, np.bool_)):
        raise InvalidParameterError(f"full_resolution must be true or false, got {full_resolution!r}")
    h, w = image.shape[:2]
    radius = max(4.0, float(strength) * max(h, w))
    factor = 1 if full_resolution else int(radius // BLUR_MIN_RADIUS)
    pil = Image.fromarray(image)
    if factor >= 2:
        pil = pil.reduce(factor)
        radius /= factor
    for _ in range(max(1, int(passes))):
        pil = pil.filter(ImageFilter.GaussianBlur(radius))
    if factor >= 2:  # (the box keeps each pixel where it was: the shrunk copy's last column may be partial)
        pil = pil.resize((w, h), Image.Resampling.BILINEAR, box=(0.0, 0.0, w / factor, h / factor))
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
    """``styled`` where ``mask`` is true, ``image`` elsewhere (a new array).

    The same array as ``np.where(mask[..., None], styled, image)``, made by copying ``image`` and
    writing only the masked pixels: the search and the extent compose thousands of candidates, most
    of them hiding a small part of the image, and there this is faster the smaller the mask (12 to
    15 times for a mask of 1 % of the image, ``bench/shared_steps.py``).

    Examples
    --------
    >>> import numpy as np
    >>> img, sty = np.zeros((2, 3, 3), np.uint8), np.full((2, 3, 3), 9, np.uint8)
    >>> apply_mask(img, sty, np.array([[True, False, False], [False, False, True]]))[..., 0].tolist()
    [[9, 0, 0], [0, 0, 9]]
    """
    image, styled, mask = np.asarray(image), np.asarray(styled), np.asarray(mask, dtype=bool)
    if image.ndim != 3 or styled.shape != image.shape or styled.dtype != image.dtype or mask.shape != image.shape[:2]:
        return np.where(mask[..., None], styled, image)  # (anything but the pipeline's case: numpy's rules)
    out = np.array(image, order="C", copy=True)
    idx = np.flatnonzero(mask)
    c = image.shape[2]
    out.reshape(-1, c)[idx] = styled.reshape(-1, c)[idx]
    return out


def apply_labels(image: np.ndarray, styled: np.ndarray, labels: np.ndarray, hide: np.ndarray) -> np.ndarray:
    """``styled`` where ``hide[labels]`` is true, ``image`` elsewhere (a new array).

    The same array as ``apply_mask(image, styled, hide[labels])``, in one pass over the pixels without the
    mask: how the search and the extent compose a candidate set of regions (``hide`` a boolean table over
    the labels, :func:`veil.counterfactual.regions.regions_lut`). 2.3 to 5.2 times faster than the mask
    and :func:`apply_mask` on BSDS500 photos at 384 pixels, hiding 1 to 20 superpixels
    (``bench/compose_speed.py``).

    Examples
    --------
    >>> import numpy as np
    >>> img, sty = np.zeros((2, 3, 3), np.uint8), np.full((2, 3, 3), 9, np.uint8)
    >>> labels = np.array([[0, 1, 1], [2, 2, 0]])
    >>> apply_labels(img, sty, labels, np.array([True, False, False]))[..., 0].tolist()
    [[9, 0, 0], [0, 0, 9]]
    """
    image, styled, labels = np.asarray(image), np.asarray(styled), np.asarray(labels)
    hide = np.asarray(hide, dtype=bool)
    if (image.ndim == 3 and image.dtype == np.uint8 and styled.shape == image.shape and styled.dtype == image.dtype
            and labels.shape == image.shape[:2] and labels.dtype.kind in "iu" and labels.dtype.isnative
            and hide.ndim == 1):
        out, inside = _apply_labels(image, styled, labels, hide)
        if inside:
            return out
    return apply_mask(image, styled, hide[labels])  # (anything but the pipeline's case: numpy's rules)


@_kernel
def _apply_labels(image, styled, labels, hide):  # type: ignore[no-untyped-def]
    # (False as soon as a label is not an index of ``hide``: the caller then goes numpy's way)
    out = image.copy()
    h, w, c = image.shape
    n = hide.shape[0]
    for y in range(h):
        for x in range(w):
            v = labels[y, x]
            if v < 0 or v >= n:
                return out, False
            if hide[v]:
                for k in range(c):
                    out[y, x, k] = styled[y, x, k]
    return out, True


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
