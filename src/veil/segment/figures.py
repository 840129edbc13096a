"""Grow a seed mask by the figures attached to it: enclosed, contrasting segments, class-agnostically.

The counterfactual search hides what the classifier needs, often one distinctive part of an
object (a bomb's spark, a knife's handle), and the rest of the object may hold no evidence the
classifier can point to. :func:`attached_figures` asks the image's own segmentation instead: the
image is cut into Felzenszwalb segments, and a segment is taken as part of the object when it

* touches a seed piece,
* is *enclosed* — it lies inside a box ``grow`` times the piece's size around the piece and does
  not reach the image's edge (background goes on beyond an object; a part of the object stops
  near it), and
* stands out from its surroundings: its mean colour differs from a ring around it by at least
  ``contrast`` in CIELAB (a figure, not a patch of texture).

Unlike a colour model grown from the seed (:func:`veil.segment.grabcut.grow_to_object`), this
takes a part of another colour (a silver blade on a dark handle) and follows thin parts, since a
segment is kept or dropped whole. It adds background figures next to the seed too, and cannot
separate an object from a region of its own colour.
"""

from __future__ import annotations

import numpy as np

from veil.errors import InvalidParameterError
from veil.segment.seeded import checked, resize_mask, seed_pieces, working_copy


def attached_figures(
    image: np.ndarray,
    seed: np.ndarray,
    *,
    grow: float = 3.0,
    scale: float = 400.0,
    sigma: float = 0.8,
    contrast: float = 10.0,
    max_region: float = 0.1,
    size: int = 384,
) -> np.ndarray:
    """The seed and the enclosed, contrasting segments attached to it.

    Parameters
    ----------
    image : (H, W, 3) uint8 ndarray
        RGB image.
    seed : (H, W) bool ndarray
        Pixels known to belong to objects (for Veil: the hidden regions).
    grow : float
        A segment must lie inside a box this many times a seed piece's larger side around it.
    scale, sigma : float
        Felzenszwalb's scale and smoothing (:func:`skimage.segmentation.felzenszwalb`), at ``size``.
    contrast : float
        Least CIELAB distance between a segment's mean colour and the mean colour of a ring
        around it (0: no contrast test).
    max_region : float
        A segment covering more than this share of the image is not taken.
    size : int
        Longer side at which the image is segmented (the mask is scaled back).

    Returns
    -------
    (H, W) bool ndarray
        ``seed`` or'ed with the figures found.

    Examples
    --------
    A silver bar attached to a dark handle (the seed) is taken; the grey background is not:

    >>> import numpy as np
    >>> img = np.random.default_rng(0).integers(90, 130, (120, 160, 3)).astype(np.uint8)  # grey texture
    >>> img[56:64, 20:40] = (60, 35, 20)      # the handle
    >>> img[57:63, 40:90] = (200, 205, 215)   # the blade
    >>> seed = np.zeros((120, 160), bool); seed[56:64, 20:40] = True
    >>> out = attached_figures(img, seed)
    >>> bool(out[57:63, 40:90].mean() > 0.9), bool(out[:40].any())
    (True, False)
    """
    from scipy import ndimage as ndi
    from skimage.color import rgb2lab
    from skimage.segmentation import felzenszwalb

    image, seed = checked(image, seed)
    for name, v in (("grow", grow), ("scale", scale)):
        if not (np.isfinite(v) and v > 0):
            raise InvalidParameterError(f"{name} must be a finite number > 0, got {v!r}")
    if not (np.isfinite(sigma) and sigma >= 0 and np.isfinite(contrast) and contrast >= 0):
        raise InvalidParameterError(f"sigma and contrast must be finite numbers >= 0, got {sigma!r}, {contrast!r}")
    if not 0 < max_region <= 1:
        raise InvalidParameterError(f"max_region must lie in (0, 1], got {max_region!r}")
    if size < 32:
        raise InvalidParameterError(f"size must be at least 32 pixels, got {size}")
    h, w = seed.shape
    if not seed.any():
        return seed.copy()
    small, hs = working_copy(image, seed, size)
    sh, sw = hs.shape
    seg = felzenszwalb(small, scale=scale, sigma=sigma, min_size=max(10, sh * sw // 4000))
    n = int(seg.max()) + 1
    flat = seg.ravel()
    count = np.bincount(flat, minlength=n)
    hidden = np.bincount(flat, weights=hs.ravel().astype(np.float64), minlength=n)
    boxes = ndi.find_objects(seg + 1)  # segment s: rows boxes[s][0], columns boxes[s][1]
    lab = rgb2lab(small) if contrast > 0 else None
    out = hs.copy()
    taken: set[int] = set()
    for piece, (py0, py1, px0, px1) in seed_pieces(hs):
        pad = grow * max(py1 - py0, px1 - px0)
        by0, by1, bx0, bx1 = py0 - pad, py1 - 1 + pad, px0 - pad, px1 - 1 + pad
        for s in np.unique(seg[ndi.binary_dilation(piece, iterations=2)]).tolist():
            if s in taken or hidden[s] >= 0.5 * count[s] or count[s] > max_region * sh * sw:
                continue
            ys, xs = boxes[s]
            y0, y1, x0, x1 = ys.start, ys.stop - 1, xs.start, xs.stop - 1
            # enclosed: inside the box around the piece, and off the image's edge
            if not (by0 < y0 and y1 < by1 and bx0 < x0 and x1 < bx1
                    and y0 > 0 and x0 > 0 and y1 < sh - 1 and x1 < sw - 1):
                continue
            r = max(2, round(0.25 * float(np.sqrt(count[s]))))
            cy0, cy1 = max(0, y0 - r), min(sh, y1 + r + 1)
            cx0, cx1 = max(0, x0 - r), min(sw, x1 + r + 1)
            cm = seg[cy0:cy1, cx0:cx1] == s
            if lab is not None:
                ring = ndi.binary_dilation(cm, iterations=r) & ~cm & ~hs[cy0:cy1, cx0:cx1]
                crop = lab[cy0:cy1, cx0:cx1]
                if not ring.any() or float(np.linalg.norm(crop[cm].mean(0) - crop[ring].mean(0))) < contrast:
                    continue
            out[cy0:cy1, cx0:cx1] |= cm
            taken.add(s)
    return resize_mask(out, (h, w)) | seed
