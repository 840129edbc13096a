"""Grow a seed mask to the object it lies on, with GrabCut (OpenCV), class-agnostically.

The counterfactual search hides what the classifier needs, often a small distinctive part of
an object. :func:`grow_to_object` asks a colour model, not the classifier, where the rest of
that object is: each connected piece of the seed becomes GrabCut's sure foreground, a box
around it (``grow`` times the piece's size on every side) its probable foreground, and a
ring around the box sure background, so the background colour model is learnt from the
surroundings of the object. What survives GrabCut and is connected to the piece is its
object. A box that cuts the object off puts the object's colour into the background model
and finds almost nothing; one far too large lets background in. So the box is doubled (up to
``expand`` times) until the object found is *stable*: the doubled box finds nearly the same
one, and more than the seed. A piece whose object never settles, or grows beyond
``max_region`` of the image, adds nothing. With ``stable=0`` the first box's object is taken as
it is: that is what the object extent's ``complete="grabcut"`` does, with a box twice the
piece's size, because on the benchmark's tuning seed it found far more of the objects
(docs/extent-history.md). ``dilate`` widens each object found, so that its outline is hidden too.

The result is a pixel mask, as fine as the image: unlike superpixels it can follow a blade
two pixels wide. It only ever adds to the seed.
"""

from __future__ import annotations

import numpy as np

from veil.errors import InvalidParameterError
from veil.segment.seeded import checked, resize_mask, seed_pieces, working_copy


def _widen(fg: np.ndarray, dilate: float) -> np.ndarray:
    r = int(round(dilate * float(np.sqrt(fg.sum()))))
    if r <= 0:
        return fg
    import cv2

    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(fg.astype(np.uint8), disk).astype(bool)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int((a | b).sum())
    return float((a & b).sum() / union) if union else 1.0


def _grabcut(bgr: np.ndarray, piece: np.ndarray, box: tuple[int, int, int, int], iterations: int,
             random_seed: int) -> np.ndarray | None:
    """GrabCut with ``piece`` sure foreground, ``box`` probable foreground and a ring around the box
    sure background (the background is learnt nearby, and the graph is only the box and its
    ring); the foreground connected to ``piece``, or None if there is no background to learn from."""
    import cv2
    from scipy import ndimage as ndi

    h, w = piece.shape
    y0, y1, x0, x1 = box
    ring = max(8, (max(y1 - y0, x1 - x0) + 3) // 4)
    cy0, cy1, cx0, cx1 = max(0, y0 - ring), min(h, y1 + ring), max(0, x0 - ring), min(w, x1 + ring)
    m = np.full((cy1 - cy0, cx1 - cx0), cv2.GC_BGD, np.uint8)
    m[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0] = cv2.GC_PR_FGD
    crop_piece = piece[cy0:cy1, cx0:cx1]
    m[crop_piece] = cv2.GC_FGD
    if (m == cv2.GC_BGD).sum() < 16:
        return None
    cv2.setRNGSeed(random_seed)
    try:
        cv2.grabCut(np.ascontiguousarray(bgr[cy0:cy1, cx0:cx1]), m, (0, 0, 1, 1), np.zeros((1, 65)), np.zeros((1, 65)),
                    iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return None
    lab, _ = ndi.label((m == cv2.GC_FGD) | (m == cv2.GC_PR_FGD))
    ids = np.unique(lab[crop_piece])
    out = np.zeros((h, w), bool)
    out[cy0:cy1, cx0:cx1] = np.isin(lab, ids[ids > 0])
    return out


def grow_to_object(
    image: np.ndarray,
    seed: np.ndarray,
    *,
    grow: float = 1.0,
    expand: int = 3,
    max_region: float = 0.15,
    size: int = 256,
    iterations: int = 2,
    stable: float = 0.8,
    dilate: float = 0.0,
    random_seed: int = 0,
) -> np.ndarray:
    """The seed grown, piece by piece, to the objects it lies on (GrabCut in a box around each piece).

    Parameters
    ----------
    image : (H, W, 3) uint8 ndarray
        RGB image.
    seed : (H, W) bool ndarray
        Pixels known to belong to objects (for Veil: the hidden regions).
    grow : float
        Margin of the first box around a seed piece, in multiples of the piece's larger side.
    expand : int
        Times the box may double while the object found is not yet stable.
    max_region : float
        An object covering more than this share of the image is not taken.
    size : int
        Longer side at which GrabCut runs (the mask is scaled back).
    iterations : int
        GrabCut iterations per box.
    stable : float
        The object of a box is taken when the doubled box finds nearly the same one
        (intersection over union at least ``stable``) and it adds at least a quarter of the
        piece's area to it; 0 takes the first box's object as it is.
    dilate : float
        Each object found is widened by this share of its size (the square root of its area):
        a mask that follows an outline exactly keeps the outline in sight.
    random_seed : int
        OpenCV's random state before each GrabCut call (its colour models start from k-means).

    Returns
    -------
    (H, W) bool ndarray
        ``seed`` or'ed with the objects found.

    Examples
    --------
    A dark disc whose top the seed covers is grown to the whole disc, not to the grey
    background:

    >>> import numpy as np
    >>> img = np.full((200, 200, 3), 150, np.uint8)
    >>> yy, xx = np.mgrid[:200, :200]
    >>> disc = (yy - 100) ** 2 + (xx - 100) ** 2 < 25 ** 2
    >>> img[disc] = (20, 25, 30)
    >>> seed = disc & (yy < 82)
    >>> out = grow_to_object(img, seed)
    >>> bool((out & disc).sum() > 0.9 * disc.sum()), bool((out & ~disc).sum() < 0.1 * disc.sum())
    (True, True)
    """

    image, seed = checked(image, seed)
    if not (np.isfinite(grow) and grow > 0):
        raise InvalidParameterError(f"grow must be a finite number > 0, got {grow!r}")
    if not 0 < max_region <= 1:
        raise InvalidParameterError(f"max_region must lie in (0, 1], got {max_region!r}")
    if not (np.isfinite(dilate) and dilate >= 0):
        raise InvalidParameterError(f"dilate must be a finite number >= 0, got {dilate!r}")
    if size < 32 or iterations < 1 or expand < 0:
        raise InvalidParameterError(
            f"size must be >= 32, iterations >= 1 and expand >= 0, got {size}, {iterations}, {expand}")
    h, w = seed.shape
    if not seed.any():
        return seed.copy()
    small, hs = working_copy(image, seed, size)
    sh, sw = hs.shape
    bgr = np.ascontiguousarray(small[..., ::-1])
    out = hs.copy()
    for piece, (y0, y1, x0, x1) in seed_pieces(hs):
        pad0 = max(1, int(grow * max(y1 - y0, x1 - x0)))
        prev: np.ndarray | None = None
        frame = max(2, round(0.03 * max(sh, sw)))
        for step in range(expand + 2):
            pad = pad0 * 2**step
            box = (max(0, y0 - pad), min(sh, y1 + pad), max(0, x0 - pad), min(sw, x1 + pad))
            last = box[0] <= frame and box[2] <= frame and box[1] >= sh - frame and box[3] >= sw - frame
            if last:  # the whole image but a thin frame, the background's last sample
                box = (frame, sh - frame, frame, sw - frame)
            fg = _grabcut(bgr, piece, box, iterations, random_seed)
            if fg is None or fg.mean() > max_region:
                break
            if stable <= 0:  # the first box's object, settled or not
                out |= _widen(fg, dilate)
                break
            # the object is what stays when the box grows: a box that cuts the object off puts its
            # colour into the background model and finds (almost) only the seed, a box far too
            # large lets background in; a result that only repeats the seed is not settled
            if (prev is not None and _iou(prev, fg) >= stable
                    and int((fg & ~piece).sum()) >= 0.25 * int(piece.sum())):
                out |= _widen(fg, dilate)
                break
            if last:
                break
            prev = fg
    return resize_mask(out, (h, w)) | seed
