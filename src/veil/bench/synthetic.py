"""Synthetic "planted symbol" composites with ground-truth masks.

The demo model and the benchmarks need images whose right answer is known: a
photo is *unsafe* exactly when it contains the **Veil demo mark**, and the
mark's pixels are the ground-truth region an explanation or an obfuscation
should find.

The Veil demo mark
    A red prohibition-style sign drawn with a slightly wobbly, hand-drawn
    stroke: a red ring (stroke about 14 % of the diameter) crossed by one red
    bar along a diameter, usually with a light (white / cream / pale grey)
    filling, rotated so that the bar runs anywhere from horizontal to
    vertical through the "\\" diagonal (bar angle 0–90°). It is planted at a
    random position with a diameter of 8–25 % of the image's shorter side.

Distractors, drawn on both classes so that "red" or "ring" alone is not enough:
the same ring-and-bar shape in other colours (blue, green, yellow, black,
white, purple), a red ring without a bar, a red triangle outline, red and
other-coloured squares, stars, plus signs and filled discs.

Nothing here is unsafe content: the mark is an arbitrary stand-in so that the
whole pipeline can be demonstrated and measured without distributing real
unsafe images.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> bg = np.full((120, 160, 3), 90, np.uint8)
>>> img, mask = make_composite(bg, rng)
>>> img.shape, mask.shape, bool(mask.any())
((120, 160, 3), (120, 160), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from veil.errors import InvalidParameterError
from veil.image import as_rgb_uint8

#: scikit-image sample photos used for *training* backgrounds.
TRAIN_SAMPLES: tuple[str, ...] = (
    "camera", "coins", "hubble_deep_field", "immunohistochemistry",
    "grass", "gravel", "brick", "moon", "clock", "retina", "page", "text", "colorwheel",
)
#: scikit-image sample photos never used for training: kept for held-out examples.
HELDOUT_SAMPLES: tuple[str, ...] = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle")

_SS = 4  # supersampling factor for anti-aliased shapes

# Distractor colours for the ring-and-bar shape: far from red in hue.
_NOT_RED = (
    (30, 80, 220), (20, 150, 60), (235, 200, 20), (20, 20, 20), (245, 245, 245),
    (130, 40, 170), (0, 170, 190),
)
_ANY_COLOUR = _NOT_RED + ((215, 25, 30), (240, 120, 20), (230, 90, 160))
_FILLS = ((250, 250, 250), (245, 240, 225), (225, 225, 225), (255, 255, 240))


def sample_backgrounds(names: Sequence[str] = TRAIN_SAMPLES) -> list[np.ndarray]:
    """Load scikit-image sample photos by name as H×W×3 ``uint8`` (gray ones replicated).

    Examples
    --------
    >>> sample_backgrounds(["coffee"])[0].shape
    (400, 600, 3)
    """
    import skimage.data

    out = []
    for name in names:
        fn = getattr(skimage.data, name, None)
        if fn is None:
            raise InvalidParameterError(f"skimage.data has no sample image {name!r}")
        arr = fn()
        if isinstance(arr, tuple):  # stereo_motorcycle -> (left, right, disparity)
            arr = arr[0]
        out.append(as_rgb_uint8(np.asarray(arr)))
    return out


def random_crop(
    image: np.ndarray, size: tuple[int, int], rng: np.random.Generator | int | None = None,
    *, min_scale: float = 0.35,
) -> np.ndarray:
    """A random crop covering at least ``min_scale`` of the side, with the aspect of ``size``, resized.

    ``size`` is ``(height, width)``. The input is not modified.
    """
    rng = np.random.default_rng(rng)
    img = as_rgb_uint8(image)
    h, w = size
    H, W = img.shape[:2]
    aspect = w / h
    max_ch = min(H, W / aspect)
    ch = max_ch * rng.uniform(min_scale, 1.0)
    cw = ch * aspect
    ch_i, cw_i = max(1, int(round(ch))), max(1, int(round(cw)))
    ch_i, cw_i = min(ch_i, H), min(cw_i, W)
    y = int(rng.integers(0, H - ch_i + 1))
    x = int(rng.integers(0, W - cw_i + 1))
    crop = Image.fromarray(img[y : y + ch_i, x : x + cw_i])
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(crop.resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)


def _wobbly_circle(cx: float, cy: float, r: float, rng: np.random.Generator, wobble: float) -> list[tuple[float, float]]:
    """Polygon of a circle whose radius wanders smoothly (a hand-drawn look)."""
    t = np.linspace(0, 2 * np.pi, 180, endpoint=False)
    rad = np.ones_like(t)
    for k in (2, 3, 5):
        rad += wobble / k * rng.uniform(-1, 1) * np.sin(k * t + rng.uniform(0, 2 * np.pi))
    return [(cx + r * q * np.cos(a), cy + r * q * np.sin(a)) for a, q in zip(t, rad, strict=True)]


def _shape_patch(kind: str, diameter: int, colour: tuple[int, int, int], rng: np.random.Generator,
                 *, fill: tuple[int, int, int] | None, angle: float) -> Image.Image:
    """Draw one shape on a transparent RGBA square patch, rotated by ``angle`` degrees."""
    d = max(4, int(diameter))
    pad = int(np.ceil(d * 0.12)) + 2
    side = (d + 2 * pad) * _SS
    patch = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(patch)
    c = side / 2
    r = d * _SS / 2
    stroke = max(_SS * 1.6, r * 2 * rng.uniform(0.12, 0.16))
    col = (*colour, 255)
    hole = (*fill, 255) if fill is not None else (0, 0, 0, 0)
    wobble = rng.uniform(0.0, 0.05)
    # rotate the geometry rather than the raster: cheaper and sharper (PIL's angle is counter-clockwise)
    ca, sa = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))

    def poly(pts: Sequence[tuple[float, float]], colour_: tuple[int, int, int, int]) -> None:
        draw.polygon([(c + (x - c) * ca + (y - c) * sa, c - (x - c) * sa + (y - c) * ca) for x, y in pts],
                     fill=colour_)

    def rect(x0: float, y0: float, x1: float, y1: float) -> None:
        poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], col)

    if kind in ("mark", "ring"):
        outer = _wobbly_circle(c, c, r, rng, wobble)
        poly(outer, col)
        inner_r = r - stroke
        poly([(c + (x - c) * inner_r / r, c + (y - c) * inner_r / r) for x, y in outer], hole)
        if kind == "mark":
            # the bar: a slightly tapered quadrilateral along the "\\" diagonal, ends inside the ring
            a = np.deg2rad(45.0)
            u = np.array([np.cos(a), np.sin(a)])
            n = np.array([-u[1], u[0]])
            half = inner_r + stroke * 0.3
            w0 = stroke * rng.uniform(0.42, 0.55)
            w1 = w0 * rng.uniform(0.85, 1.15)
            p0, p1 = np.array([c, c]) - u * half, np.array([c, c]) + u * half
            poly([tuple(p0 + n * w0), tuple(p1 + n * w1), tuple(p1 - n * w1), tuple(p0 - n * w0)], col)
    elif kind == "triangle":
        pts = [(c + r * np.cos(a), c + r * np.sin(a)) for a in np.deg2rad([-90, 30, 150])]
        poly(pts, col)
        poly([(c + (x - c) * 0.62, c + (y - c) * 0.62) for x, y in pts], hole)
    elif kind == "square":
        s = r * 0.85
        rect(c - s, c - s, c + s, c + s)
    elif kind == "star":
        ang = np.deg2rad(np.arange(10) * 36 - 90)
        rr = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        poly([(c + q * np.cos(a), c + q * np.sin(a)) for a, q in zip(ang, rr, strict=True)], col)
    elif kind == "plus":
        s = stroke * 0.7
        rect(c - r, c - s, c + r, c + s)
        rect(c - s, c - r, c + s, c + r)
    elif kind == "disc":
        poly(_wobbly_circle(c, c, r, rng, wobble), col)
    else:  # pragma: no cover - internal
        raise InvalidParameterError(f"unknown shape kind {kind!r}")
    out_side = d + 2 * pad
    return patch.resize((out_side, out_side), Image.Resampling.LANCZOS)


def _paste(canvas: np.ndarray, patch: Image.Image, cx: int, cy: int) -> np.ndarray:
    """Alpha-composite ``patch`` centred at ``(cx, cy)`` in place; returns the coverage alpha."""
    H, W = canvas.shape[:2]
    arr = np.asarray(patch, dtype=np.float32)
    ph, pw = arr.shape[:2]
    y0, x0 = cy - ph // 2, cx - pw // 2
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(H, y0 + ph), min(W, x0 + pw)
    alpha_full = np.zeros((H, W), np.float32)
    if ye <= ys or xe <= xs:
        return alpha_full
    sub = arr[ys - y0 : ye - y0, xs - x0 : xe - x0]
    alpha = sub[..., 3:4] / 255.0
    region = canvas[ys:ye, xs:xe].astype(np.float32)
    canvas[ys:ye, xs:xe] = np.clip(region * (1 - alpha) + sub[..., :3] * alpha + 0.5, 0, 255).astype(np.uint8)
    alpha_full[ys:ye, xs:xe] = alpha[..., 0]
    return alpha_full


def make_composite(
    background: np.ndarray,
    rng: np.random.Generator | int | None = None,
    *,
    with_symbol: bool = True,
    scale: tuple[float, float] = (0.08, 0.25),
    n_distractors: tuple[int, int] = (0, 3),
    fill_probability: float = 0.75,
    distractor_only: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Plant the Veil demo mark (and distractors) on a copy of ``background``.

    Parameters
    ----------
    background : ndarray
        H×W×3 ``uint8`` photo (gray and float inputs are converted). Not modified.
    rng : Generator, int or None
        Source of randomness (position, size, rotation, colours, distractors).
    with_symbol : bool
        Plant the mark (the image is then "unsafe").
    scale : (float, float)
        Range of the mark's diameter as a fraction of the shorter image side.
    n_distractors : (int, int)
        Inclusive range of the number of distractor shapes.
    fill_probability : float
        Probability that the ring is filled with a light colour (else see-through).
    distractor_only : bool
        Force at least one distractor (useful for "hard negative" examples).

    Returns
    -------
    image : ndarray
        H×W×3 ``uint8`` composite.
    mask : ndarray
        H×W ``bool``, True where the mark covers the image (all False without it).

    Examples
    --------
    >>> import numpy as np
    >>> img, mask = make_composite(np.zeros((64, 64, 3), np.uint8), 1, with_symbol=False)
    >>> bool(mask.any())
    False
    """
    rng = np.random.default_rng(rng)
    canvas = as_rgb_uint8(background).copy()
    H, W = canvas.shape[:2]
    if min(H, W) < 16:
        raise InvalidParameterError(f"background (shape {canvas.shape}) must be at least 16×16")
    lo, hi = scale
    if not 0 < lo <= hi < 1:
        raise InvalidParameterError(f"scale must satisfy 0 < low <= high < 1, got {scale}")
    if not 0 <= fill_probability <= 1:
        raise InvalidParameterError(f"fill_probability must lie in [0, 1], got {fill_probability}")
    short = min(H, W)
    n_min, n_max = n_distractors
    n = int(rng.integers(n_min, n_max + 1))
    if distractor_only:
        n = max(n, 1)
    occupied: list[tuple[float, float, float]] = []

    def place(d: int) -> tuple[int, int]:
        # keep shapes inside a 4 % margin and avoid overlapping earlier ones when possible
        margin = int(0.04 * short) + d // 2 + 1
        best: tuple[int, int] = (W // 2, H // 2)
        for _ in range(30):
            cx = int(rng.integers(min(margin, W // 2), max(W - margin, W // 2 + 1)))
            cy = int(rng.integers(min(margin, H // 2), max(H - margin, H // 2 + 1)))
            best = (cx, cy)
            if all((cx - ox) ** 2 + (cy - oy) ** 2 > (d / 2 + od / 2 + 2) ** 2 for ox, oy, od in occupied):
                break
        occupied.append((best[0], best[1], d))
        return best

    def draw_mark() -> np.ndarray:
        d = int(round(short * rng.uniform(lo, hi)))
        red = (int(rng.integers(195, 245)), int(rng.integers(0, 40)), int(rng.integers(0, 45)))
        fill = _FILLS[int(rng.integers(len(_FILLS)))] if rng.random() < fill_probability else None
        patch = _shape_patch("mark", d, red, rng, fill=fill, angle=float(rng.uniform(-45, 45)))
        cx, cy = place(d)
        return _paste(canvas, patch, cx, cy)

    mask = np.zeros((H, W), bool)
    order = ["mark"] * int(with_symbol) + ["distractor"] * n
    rng.shuffle(order)  # type: ignore[arg-type]
    for item in order:
        if item == "mark":
            alpha = draw_mark()
            mask |= alpha > 0.5
            continue
        kind = ["mark", "ring", "triangle", "square", "star", "plus", "disc"][
            # look-alikes (the sign in another colour, a red ring without its bar) are the most frequent
            int(rng.choice(7, p=[0.35, 0.25, 0.1, 0.075, 0.075, 0.075, 0.075]))
        ]
        if kind == "mark":
            colour = _NOT_RED[int(rng.integers(len(_NOT_RED)))]
        elif kind in ("ring", "triangle"):
            colour = (int(rng.integers(195, 245)), int(rng.integers(0, 40)), int(rng.integers(0, 45)))
        else:
            colour = _ANY_COLOUR[int(rng.integers(len(_ANY_COLOUR)))]
        fill = _FILLS[int(rng.integers(len(_FILLS)))] if rng.random() < fill_probability else None
        d = int(round(short * rng.uniform(lo, hi)))
        angle = float(rng.uniform(-45, 45)) if kind == "mark" else float(rng.uniform(-180, 180))
        patch = _shape_patch(kind, d, colour, rng, fill=fill, angle=angle)
        cx, cy = place(d)
        alpha = _paste(canvas, patch, cx, cy)
        mask &= ~(alpha > 0.5)  # a distractor drawn on top hides that part of the mark
    return canvas, mask


def make_dataset(
    n: int,
    rng: np.random.Generator | int | None = None,
    size: tuple[int, int] = (160, 160),
    *,
    backgrounds: Sequence[np.ndarray] | None = None,
    positive_fraction: float = 0.5,
    **composite_kwargs: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` composites over random background crops, with labels and masks.

    Parameters
    ----------
    n : int
        Number of images.
    rng : Generator, int or None
        Seed or generator; the same seed gives the same dataset.
    size : (int, int)
        ``(height, width)`` of every image.
    backgrounds : sequence of ndarray, optional
        Photos to crop from; default :data:`TRAIN_SAMPLES` from scikit-image.
    positive_fraction : float
        Fraction of images carrying the mark (exactly ``round(n * positive_fraction)``).
    **composite_kwargs
        Passed to :func:`make_composite`.

    Returns
    -------
    images : ndarray
        ``(n, H, W, 3)`` ``uint8``.
    labels : ndarray
        ``(n,)`` ``int64``: 1 when the mark is present ("unsafe"), else 0.
    masks : ndarray
        ``(n, H, W)`` ``bool`` ground truth of the mark.

    Examples
    --------
    >>> imgs, labels, masks = make_dataset(4, 0, size=(48, 64))
    >>> imgs.shape, int(labels.sum()), masks.shape
    ((4, 48, 64, 3), 2, (4, 48, 64))
    """
    if n < 0:
        raise InvalidParameterError(f"n must be non-negative, got {n}")
    if not 0 <= positive_fraction <= 1:
        raise InvalidParameterError(f"positive_fraction must lie in [0, 1], got {positive_fraction}")
    h, w = size
    if h < 16 or w < 16:
        raise InvalidParameterError(f"size must be at least (16, 16), got {size}")
    rng = np.random.default_rng(rng)
    bgs = list(backgrounds) if backgrounds is not None else sample_backgrounds()
    if not bgs:
        raise InvalidParameterError("backgrounds must not be empty")
    labels = np.zeros(n, np.int64)
    labels[: int(round(n * positive_fraction))] = 1
    rng.shuffle(labels)
    images = np.zeros((n, h, w, 3), np.uint8)
    masks = np.zeros((n, h, w), bool)
    for i in range(n):
        bg = random_crop(bgs[int(rng.integers(len(bgs)))], (h, w), rng)
        images[i], masks[i] = make_composite(bg, rng, with_symbol=bool(labels[i]), **composite_kwargs)
    return images, labels, masks
