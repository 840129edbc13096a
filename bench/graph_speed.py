"""Felzenszwalb graph segmentation: Veil's numba run against scikit-image's, same labels.

The object extent's figure search cuts every flagged image at 384 pixels with Felzenszwalb's
algorithm (scale 400, sigma 0.8), and now and then cuts it again finer (scale 200).
``veil.segment.graph.felzenszwalb_labels`` runs scikit-image's algorithm without building the array of
pixel pairs, and visits equal weights in the order of pairs (a stable sort). This script checks, image
by image, that it gives the label map of scikit-image run with a stable sort (and counts, for
information, the maps that differ from scikit-image with numpy's default sort, which is not stable),
and times both, interleaved, on BSDS500 photos resized to ``--size`` on their longer side
(area-averaged, as the figure search does)::

    python bench/graph_speed.py [--split test] [--n 50] [--size 384] [--repeats 3]

Prints a markdown table for ``docs/benchmarks.md`` and the command that made it; exits 1 if any
label map differs from the stable-sort reference. A second table times what the figure search does with
one copy: one pixel graph (``felzenszwalb_graph``) cut at both scales, and checks that each of its cuts is
``felzenszwalb_labels``'s.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from veil.segment.graph import felzenszwalb_labels  # noqa: E402

DATA = Path("/work/shared/data/bsds500")
#: (scale, min_size as a share of the pixels): the figure search's coarse and fine cuts
CUTS = ((400.0, 4000), (200.0, 16000))


def load(split: str, n: int, size: int) -> list[np.ndarray]:
    """The first ``n`` images of a BSDS500 split, their longer side ``size`` (area-averaged)."""
    import cv2
    from skimage.io import imread

    paths = sorted((DATA / "images" / split).glob("*.jpg"))[:n]
    if not paths:
        raise SystemExit(f"no images under {DATA / 'images' / split}")
    out = []
    for p in paths:
        img = imread(p)
        f = size / max(img.shape[:2])
        out.append(cv2.resize(img, (round(img.shape[1] * f), round(img.shape[0] * f)), interpolation=cv2.INTER_AREA))
    return out


def min_size(img: np.ndarray, share: int) -> int:
    """The least segment of a cut: one ``share``-th of the image's pixels, at least 10 (the figure search's)."""
    return max(10, img.shape[0] * img.shape[1] // share)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


@contextmanager
def stable_numpy_sort() -> Iterator[None]:
    """While open, ``np.argsort`` (which scikit-image's Felzenszwalb sorts its pairs with) is stable."""
    plain = np.argsort
    np.argsort = partial(plain, kind="stable")
    try:
        yield
    finally:
        np.argsort = plain


def compare(images: list[np.ndarray], *, repeats: int = 3, sigma: float = 0.8) -> list[dict[str, float | int | str]]:
    """Per cut: median ms per image of each implementation over ``repeats`` interleaved passes, and how many
    label maps differ from scikit-image's with a stable sort (``differ``) and with its own (``differ_plain``)."""
    from skimage.segmentation import felzenszwalb

    felzenszwalb_labels(images[0], scale=400.0)  # numba: compile or load from its cache
    rows: list[dict[str, float | int | str]] = []
    for scale, share in CUTS:
        ours: list[float] = []
        theirs: list[float] = []
        differ = differ_plain = 0
        for r in range(repeats):
            t_ours = t_theirs = 0.0
            for img in images:
                kw = {"scale": scale, "sigma": sigma, "min_size": min_size(img, share)}
                runs = {"theirs": partial(felzenszwalb, img, **kw), "ours": partial(felzenszwalb_labels, img, **kw)}
                got = {name: timed(runs[name]) for name in (("theirs", "ours") if r % 2 == 0 else ("ours", "theirs"))}
                t_theirs += got["theirs"][0]
                t_ours += got["ours"][0]
                if r == 0:
                    differ_plain += not np.array_equal(got["theirs"][1], got["ours"][1])
                    with stable_numpy_sort():
                        reference = felzenszwalb(img, **kw)
                    differ += not np.array_equal(reference, got["ours"][1])
            theirs.append(1000 * t_theirs / len(images))
            ours.append(1000 * t_ours / len(images))
        rows.append({"scale": scale, "images": len(images), "skimage_ms": statistics.median(theirs),
                     "veil_ms": statistics.median(ours), "differ": differ,
                     "differ_plain": differ_plain})
    return rows


def both_cuts(images: list[np.ndarray], *, repeats: int = 3, sigma: float = 0.8) -> dict[str, float | int]:
    """The figure search's use: one graph per image, cut at both scales. Median ms per image over ``repeats``
    passes, and how many cuts differ from :func:`felzenszwalb_labels`'s."""
    from veil.segment.graph import felzenszwalb_graph

    def run(img: np.ndarray) -> list[np.ndarray]:
        cut = felzenszwalb_graph(img, sigma=sigma)
        return [cut(scale, min_size(img, share)) for scale, share in CUTS]

    run(images[0])  # (numba: compile or load from its cache)
    passes: list[float] = []
    differ = 0
    for r in range(repeats):
        total = 0.0
        for img in images:
            t, cuts = timed(partial(run, img))
            total += t
            if r == 0:
                differ += sum(not np.array_equal(c, felzenszwalb_labels(img, scale=scale, sigma=sigma,
                                                                        min_size=min_size(img, share)))
                              for c, (scale, share) in zip(cuts, CUTS, strict=True))
        passes.append(1000 * total / len(images))
    return {"images": len(images), "ms": statistics.median(passes), "differ": differ}


def table(rows: list[dict[str, float | int | str]]) -> str:
    lines = ["| cut | images | scikit-image (ms/img) | veil.segment.graph (ms/img) | speed-up "
             "| label maps that differ (scikit-image with a stable sort) | (with its own sort) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| scale {r['scale']:g} | {r['images']} | {float(r['skimage_ms']):.1f} | {float(r['veil_ms']):.1f} "
                     f"| {float(r['skimage_ms']) / float(r['veil_ms']):.2f}× | {r['differ']} | {r['differ_plain']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--n", type=int, default=50, help="images")
    p.add_argument("--size", type=int, default=384, help="longer side, pixels")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    images = load(args.split, args.n, args.size)
    rows = compare(images, repeats=args.repeats)
    both = both_cuts(images, repeats=args.repeats)
    print(f"`python bench/graph_speed.py --split {args.split} --n {args.n} --size {args.size} --repeats {args.repeats}` "
          f"({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, one process)\n")
    print(table(rows))
    print("\n| one graph, both cuts (the figure search) | images | veil.segment.graph (ms/img) | cuts that differ |")
    print("|---|---|---|---|")
    print(f"| scales {' and '.join(f'{s:g}' for s, _ in CUTS)} | {both['images']} | {float(both['ms']):.1f} "
          f"| {both['differ']} |")
    return 1 if any(int(r["differ"]) for r in rows) or int(both["differ"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
