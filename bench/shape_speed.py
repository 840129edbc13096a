"""The figure search's shape measures, timed against the scikit-image and SciPy calls they replaced.

The object extent's figure search (:mod:`veil.segment.figures`) weighs segments by their solidity (pixels
over those of their convex hull) and their mean depth (mean distance of their pixels to their border).
:mod:`veil.segment.shape` gives the same hull pixels and the same distances as
``skimage.morphology.convex_hull_image`` and ``scipy.ndimage.distance_transform_edt`` in exact integer
arithmetic. This script cuts BSDS500 photos as the figure search does (Felzenszwalb, scale 400, on a copy of
512 pixels), takes each segment's crop as the search does, and times both ways on every segment
(interleaved, best of ``--repeats``, one thread); every hull and every distance must be equal::

    python bench/shape_speed.py [--bsds ../shared/data/bsds500] [--photos 20] [--repeats 3]

Prints a markdown table for ``docs/benchmarks.md`` and the command that made it.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def crops(photos: list[np.ndarray]) -> list[np.ndarray]:
    """Each segment of each photo's figure-search cut, cropped to its bounding box (as the search weighs it)."""
    from scipy import ndimage as ndi

    from veil.image import fit_within, resize
    from veil.segment.graph import felzenszwalb_graph

    out = []
    for img in photos:
        small = resize(img, fit_within(img.shape, 512))
        seg = felzenszwalb_graph(small, sigma=0.8)(400.0, max(10, small.shape[0] * small.shape[1] // 4000))
        for s, box in enumerate(ndi.find_objects(seg + 1)):
            if box is not None:
                out.append(np.ascontiguousarray(seg[box] == s))
    return out


def seconds(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> None:
    from shared_steps import (  # (BSDS500 test photos, as the other step timings read them)
        photo_args,
        photos,
    )

    a = photo_args(__doc__.split("\n\n")[0], argv, photos=20, repeats=3)
    import torch

    torch.set_num_threads(1)
    from scipy import ndimage as ndi
    from skimage.morphology import convex_hull_image

    from veil.segment.shape import convex_hull_count, convex_hull_mask, depth_squared

    pics = photos(a.bsds, a.photos)
    masks = crops(pics)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hulls = [convex_hull_image(m) for m in masks]
    same_hull = all(np.array_equal(convex_hull_mask(m), h) and convex_hull_count(m) == int(h.sum())
                    for m, h in zip(masks, hulls, strict=True))
    same_depth = all(np.array_equal(np.sqrt(depth_squared(m).astype(np.float64)),
                                    ndi.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]) for m in masks)
    rows = []
    for name, theirs, ours in (
        ("solidity's hull count", lambda: [int(convex_hull_image(m).sum()) for m in masks],
         lambda: [convex_hull_count(m) for m in masks]),
        ("mean depth", lambda: [float(ndi.distance_transform_edt(np.pad(m, 1)).mean()) for m in masks],
         lambda: [float(np.sqrt(depth_squared(m).astype(np.float64)).mean()) for m in masks]),
    ):
        t_theirs, t_ours = [], []
        for _ in range(a.repeats):  # (interleaved; the best of each)
            t_theirs.append(seconds(theirs))
            t_ours.append(seconds(ours))
        rows.append((name, min(t_theirs), min(t_ours)))
    print(f"python bench/shape_speed.py --photos {a.photos} --repeats {a.repeats}\n")
    print(f"{len(masks)} segments of {len(pics)} BSDS500 test photos (512-pixel copies, scale 400); "
          f"hulls equal: {same_hull}; distances equal: {same_depth}\n")
    print("| measure | scikit-image / SciPy (µs per segment) | veil.segment.shape (µs per segment) | speed-up |")
    print("|---|---|---|---|")
    for name, t0, t1 in rows:
        print(f"| {name} | {1e6 * t0 / len(masks):.0f} | {1e6 * t1 / len(masks):.0f} | {t0 / t1:.1f}× |")
    if not (same_hull and same_depth):
        raise SystemExit("the shape measures differ from scikit-image's or SciPy's")


if __name__ == "__main__":
    main()
