"""Composing candidates from their regions, and the Lab of an image converted twice, timed against before.

* *Composing a candidate*: the search and the extent classify thousands of candidates, each the image with a
  set of regions replaced by the styled copy. :func:`veil.counterfactual.styles.apply_labels` reads the
  label map once against a table of the hidden ids (:func:`veil.counterfactual.regions.regions_lut`);
  before 2026-12-07 a boolean mask was made first (:func:`~veil.counterfactual.regions.regions_mask`) and
  then selected with (:func:`~veil.counterfactual.styles.apply_mask`). Timed on BSDS500 photos at the
  extent's working size (384 pixels on the longer side) with their BASS superpixels, hiding the 1, 5 and 20
  superpixels of most pixels. The arrays must be equal.
* *Lab twice*: the pipeline's search merges by colour (:func:`veil.segment.merge_similar`) the image BASS
  has just segmented. The conversion to Lab is remembered for the last image each thread converted (of at
  most ``LAB_MEMO_PIXELS``), so the second one only compares the pixels. Timed at the segmentation size
  (640 pixels); the Lab must be equal to a fresh conversion.

Interleaved, best of ``--repeats``, one thread::

    python bench/compose_speed.py [--bsds ../shared/data/bsds500] [--photos 12] [--repeats 5]

Prints markdown tables for ``docs/benchmarks.md`` and the command that made them; exits 1 when an array
differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def main(argv: list[str] | None = None) -> int:
    from shared_steps import best_ms, photo_args, photos

    a = photo_args(__doc__.split("\n\n")[0], argv, photos=12, repeats=5)
    import torch

    torch.set_num_threads(1)

    from veil.counterfactual.regions import regions_lut, regions_mask
    from veil.counterfactual.styles import apply_labels, apply_mask, blur
    from veil.image import fit_within, resize
    from veil.segment import bass as b
    from veil.segment import segment

    pics = photos(a.bsds, a.photos)
    all_equal = True
    rows: dict[int, list[tuple[float, float]]] = {1: [], 5: [], 20: []}
    for pic in pics:
        img = resize(pic, fit_within(pic.shape, 384))
        sty = blur(img)
        labels = segment(img, "bass")
        by_size = np.argsort(-np.bincount(labels.ravel()), kind="stable")
        for k in rows:
            ids = by_size[:k].tolist()
            ways = {"mask": lambda i=img, s=sty, lb=labels, ids=ids: apply_mask(i, s, regions_mask(lb, ids)),
                    "labels": lambda i=img, s=sty, lb=labels, ids=ids: apply_labels(i, s, lb, regions_lut(lb, ids))}
            t = best_ms(ways, a.repeats, inner=20)
            all_equal &= bool(np.array_equal(ways["mask"](), ways["labels"]()))
            rows[k].append((t["mask"], t["labels"]))
    print(f"python bench/compose_speed.py --photos {a.photos} --repeats {a.repeats}\n")
    print(f"{len(pics)} BSDS500 test photos at 384 pixels on the longer side, their BASS superpixels; "
          f"arrays equal: {all_equal}\n")
    print("| superpixels hidden (the largest) | mask, then select: ms | one pass over the labels: ms | speed-up |")
    print("|---|---|---|---|")
    for k, r in rows.items():
        m = np.array(r).mean(axis=0)
        print(f"| {k} | {m[0]:.3f} | {m[1]:.3f} | {m[0] / m[1]:.1f}× |")

    lab_rows = []
    for pic in pics:
        img = resize(pic, fit_within(pic.shape, 640))
        other = img.copy()
        other[0, 0, 0] ^= 1
        fresh = b._rgb_to_lab(img, b._SRGB_LINEAR)
        all_equal &= bool(np.array_equal(b._lab(img), fresh) and np.array_equal(b._lab(img.copy()), fresh))
        t = best_ms({"convert": lambda img=img: b._rgb_to_lab(img, b._SRGB_LINEAR),
                     "again": lambda img=img: b._lab(img),  # (the memo holds it: the pixels compared)
                     "other": lambda img=img, other=other: (b._lab(other), b._lab(img))}, a.repeats)
        lab_rows.append((t["convert"], t["again"], t["other"] / 2))
    m = np.array(lab_rows).mean(axis=0)
    print()
    print("| Lab at 640 pixels | conversion: ms | the same image again: ms | another image each time: ms |")
    print("|---|---|---|---|")
    print(f"| {len(pics)} BSDS500 test photos | {m[0]:.2f} | {m[1]:.2f} | {m[2]:.2f} |")
    print()
    print("command: python bench/compose_speed.py " + " ".join(sys.argv[1:] if argv is None else argv))
    if not all_equal:
        print("the arrays differ", file=sys.stderr)
    return 0 if all_equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
