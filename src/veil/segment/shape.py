"""Shape measures of a binary mask, in exact integer arithmetic: its convex hull and its pixels' depth.

The figure search (:mod:`veil.segment.figures`) weighs dozens of segments per flagged image by their
solidity (pixels over those of their convex hull) and their mean depth (distance to their border). Both were
made with scikit-image and SciPy; each here gives the same pixels and the same distances, faster
(``bench/shape_speed.py``).

**The convex hull.**
:func:`skimage.morphology.convex_hull_image` gives the pixels inside or on the convex hull of a mask's
pixels, each taken as the four midpoints of its edges (``offset_coordinates``). It finds the hull with Qhull
and then tests every pixel of the mask's array against the polygon: together about a fifth of the figure
search's time (docs/benchmarks.md, "Shape measures of the figure search"). :func:`convex_hull_rows` gives
the same pixels as one interval per row: the hull of the midpoints of the edges of each row's first and last
pixel (Andrew's monotone chain; every other pixel of a row lies between those two, so its midpoints lie in
their hull), with coordinates doubled so that every midpoint is an integer, and each row's interval from the
hull's edges by exact integer division. A hypothesis test checks it against scikit-image's pixels.

**The depth.** :func:`depth_squared` is the squared Euclidean distance of each pixel of a mask to the
nearest pixel outside it (or outside the array): the square of ``scipy.ndimage.distance_transform_edt``'s
distances, exactly, as integers (the lower envelope of parabolas of Felzenszwalb and Huttenlocher, each
crossing kept as an integer fraction), so that its square root is SciPy's distance to the last bit.
"""

from __future__ import annotations

import numpy as np

from veil._jit import LazyKernels
from veil.errors import InvalidParameterError

_kernel = LazyKernels(globals())


def convex_hull_rows(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``mask``, the first and last column of its convex hull image (``first > last`` where the row
    holds none of it): the pixels of :func:`skimage.morphology.convex_hull_image` with its defaults.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((5, 7), bool); m[1, 1] = m[3, 5] = True   # two pixels on a diagonal
    >>> first, last = convex_hull_rows(m)
    >>> [(int(a), int(b)) if a <= b else None for a, b in zip(first, last)]
    [None, (1, 2), (2, 4), (4, 5), None]
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise InvalidParameterError(f"mask must be 2-D, got shape {m.shape}")
    return _hull_rows(np.ascontiguousarray(m, dtype=np.bool_))


def convex_hull_count(mask: np.ndarray) -> int:
    """Pixels of ``mask``'s convex hull image: ``skimage.morphology.convex_hull_image(mask).sum()`` (0 for an
    empty mask).

    Examples
    --------
    >>> import numpy as np
    >>> ring = np.zeros((9, 9), bool); ring[1:8, 1:8] = True; ring[2:7, 2:7] = False
    >>> int(ring.sum()), convex_hull_count(ring)
    (24, 49)
    """
    first, last = convex_hull_rows(mask)
    return int(np.maximum(last - first + 1, 0).sum())


def convex_hull_mask(mask: np.ndarray) -> np.ndarray:
    """The convex hull image of ``mask``: ``skimage.morphology.convex_hull_image(mask)`` (all False for an empty
    mask, where scikit-image also warns).

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((4, 6), bool); m[1, 1] = m[2, 4] = True
    >>> convex_hull_mask(m).astype(int).tolist()
    [[0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0]]
    """
    first, last = convex_hull_rows(mask)
    cols = np.arange(np.shape(mask)[1])
    return (cols[None, :] >= first[:, None]) & (cols[None, :] <= last[:, None])


@_kernel
def _ceildiv(a, b):
    # ceil(a / b) for b > 0, exactly
    return -((-a) // b)


@_kernel
def _cross(ox, oy, ax, ay, bx, by):
    return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)


@_kernel
def _hull_rows(mask):
    h, w = mask.shape
    first = np.ones(h, np.int64)
    last = np.zeros(h, np.int64)
    # candidate points, doubled: for each row's first and last pixel (r, c), the midpoints of its edges
    # (2c ± 1, 2r) and (2c, 2r ± 1) as (x, y)
    px = np.empty(8 * h, np.int64)
    py = np.empty(8 * h, np.int64)
    n = 0
    for r in range(h):
        lo = -1
        hi = -1
        for c in range(w):
            if mask[r, c]:
                if lo < 0:
                    lo = c
                hi = c
        if lo < 0:
            continue
        for c in (lo, hi):
            px[n] = 2 * c - 1
            py[n] = 2 * r
            px[n + 1] = 2 * c + 1
            py[n + 1] = 2 * r
            px[n + 2] = 2 * c
            py[n + 2] = 2 * r - 1
            px[n + 3] = 2 * c
            py[n + 3] = 2 * r + 1
            n += 4
    if n == 0:
        return first, last
    # sort by (x, y)
    key = np.empty(n, np.int64)
    span = 2 * h + 4
    for i in range(n):
        key[i] = (px[i] + 2) * span + (py[i] + 2)
    order = np.argsort(key)
    xs = np.empty(n, np.int64)
    ys = np.empty(n, np.int64)
    m = 0
    for i in range(n):  # (without repeats)
        k = order[i]
        if m > 0 and xs[m - 1] == px[k] and ys[m - 1] == py[k]:
            continue
        xs[m] = px[k]
        ys[m] = py[k]
        m += 1
    # Andrew's monotone chain: hull vertices counter-clockwise in (x, y), collinear points dropped
    hx = np.empty(2 * m + 1, np.int64)
    hy = np.empty(2 * m + 1, np.int64)
    k = 0
    for i in range(m):
        while k >= 2 and _cross(hx[k - 2], hy[k - 2], hx[k - 1], hy[k - 1], xs[i], ys[i]) <= 0:
            k -= 1
        hx[k] = xs[i]
        hy[k] = ys[i]
        k += 1
    t = k + 1
    for i in range(m - 2, -1, -1):
        while k >= t and _cross(hx[k - 2], hy[k - 2], hx[k - 1], hy[k - 1], xs[i], ys[i]) <= 0:
            k -= 1
        hx[k] = xs[i]
        hy[k] = ys[i]
        k += 1
    nv = k - 1  # (the last vertex repeats the first)
    # a pixel (r, c) is in the hull when (2c, 2r) is on the inner side of every edge (or on it):
    # cross(v[i+1] - v[i], p - v[i]) >= 0, i.e. dy * X <= dx * (Y - y_i) + dy * x_i for the edge's dx, dy
    for r in range(h):
        yy = 2 * r
        lo = -(2**62)
        hi = 2**62
        for i in range(nv):
            x1 = hx[i]
            y1 = hy[i]
            x2 = hx[i + 1]
            y2 = hy[i + 1]
            dx = x2 - x1
            dy = y2 - y1
            rhs = dx * (yy - y1) + dy * x1
            if dy > 0:  # X <= rhs / dy, X = 2c: c <= floor(rhs / (2 dy))
                c = rhs // (2 * dy)
                if c < hi:
                    hi = c
            elif dy < 0:  # X >= rhs / dy: c >= ceil(-rhs / (-2 dy))
                c = _ceildiv(-rhs, -2 * dy)
                if c > lo:
                    lo = c
            elif rhs < 0:  # (a horizontal edge the row lies outside of)
                lo = 1
                hi = 0
                break
        if lo < 0:
            lo = 0
        if hi > w - 1:
            hi = w - 1
        first[r] = lo
        last[r] = hi
    return first, last


def depth_squared(mask: np.ndarray) -> np.ndarray:
    """Squared distance (int64) of each pixel of ``mask`` to the nearest pixel outside it, the array's
    surroundings counting as outside: ``distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1] ** 2``, exactly
    (0 outside the mask).

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((5, 7), bool); m[1:4, 1:6] = True
    >>> depth_squared(m)[2].tolist(), depth_squared(np.ones((1, 3), bool)).tolist()
    ([0, 1, 4, 4, 4, 1, 0], [[1, 1, 1]])
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise InvalidParameterError(f"mask must be 2-D, got shape {m.shape}")
    return _depth_squared(np.ascontiguousarray(m, dtype=np.bool_))


@_kernel
def _depth_squared(mask):
    h, w = mask.shape
    # down each column: the distance to the nearest pixel outside the mask in that column (the rows above
    # and below the array are outside)
    col = np.empty((h, w), np.int64)
    for c in range(w):
        d = 0
        for r in range(h):
            d = d + 1 if mask[r, c] else 0
            col[r, c] = d
        d = 0
        for r in range(h - 1, -1, -1):
            d = d + 1 if mask[r, c] else 0
            if d < col[r, c]:
                col[r, c] = d
    out = np.zeros((h, w), np.int64)
    # along each row: min over columns c' of col[c']^2 + (c - c')^2, the columns -1 and w outside (0)
    n = w + 2
    f = np.empty(n, np.int64)
    v = np.empty(n, np.int64)
    zn = np.empty(n + 1, np.int64)  # parabola k's span starts at zn[k] / zd[k] (zd > 0; zd 0: plus infinity,
    zd = np.empty(n + 1, np.int64)  # the end of the last; the first's span starts at minus infinity)
    for r in range(h):
        f[0] = 0
        f[n - 1] = 0
        for c in range(w):
            f[c + 1] = col[r, c] * col[r, c]
        k = 0
        v[0] = 0
        zn[1] = 1
        zd[1] = 0
        for q in range(1, n):
            while True:
                p = v[k]
                num = (f[q] + q * q) - (f[p] + p * p)
                den = 2 * (q - p)
                # q's parabola crosses p's at num / den: at or before where p's span starts, p is hidden
                if k > 0 and num * zd[k] <= zn[k] * den:
                    k -= 1
                else:
                    break
            k += 1
            v[k] = q
            zn[k] = num
            zd[k] = den
            zn[k + 1] = 1
            zd[k + 1] = 0
        k = 0
        for q in range(1, n - 1):
            # the parabola whose span holds q: advance while the next crossing lies before q
            while zd[k + 1] != 0 and zn[k + 1] < q * zd[k + 1]:
                k += 1
            if mask[r, q - 1]:
                p = v[k]
                out[r, q - 1] = (q - p) * (q - p) + f[p]
    return out
