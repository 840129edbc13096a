"""Three steps every pipeline shares, timed against what they replaced (docs/extent-history.md, 2026-12-06 02:30).

* *Masked selection*: :func:`veil.counterfactual.styles.apply_mask` (copy the image, write the masked
  pixels) against ``np.where(mask[..., None], styled, image)``, on the extent's working size and on a
  2,000-pixel photo, with a mask of about 1 % of the image. The arrays must be equal.
* *The classifier's resize*: :func:`veil.classify.torch.preprocess_images` (8-bit antialiased resize, one
  call per batch of one size) against the float resize of before (each image converted to float, then
  resized on its own), a batch of 16 candidates of 384 × 288 to 128². Also the largest and mean
  difference of the two, in grey levels, on BSDS500 photos.
* *The blur style*: :func:`veil.counterfactual.styles.blur` (a shrunk copy for a radius of 16 pixels or
  more) against ``full_resolution=True``, on BSDS500 photos resized to several sizes: time and the
  difference in grey levels.

Interleaved, best of ``--repeats``, one thread::

    python bench/shared_steps.py [--bsds ../shared/data/bsds500] [--photos 12] [--repeats 5]

Prints markdown tables for ``docs/extent-history.md`` (that block) and the command that made them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from veil.classify.torch import preprocess_images
from veil.counterfactual.styles import apply_mask, blur

ROOT = Path(__file__).resolve().parents[1]


def best_ms(fns: dict[str, Callable[[], Any]], repeats: int, inner: int = 1) -> dict[str, float]:
    """Best of ``repeats`` (each ``inner`` calls) per function, interleaved, in milliseconds per call."""
    best = {k: np.inf for k in fns}
    for f in fns.values():
        f()  # (warm-up)
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            for _ in range(inner):
                f()
            best[k] = min(best[k], (time.perf_counter() - t) / inner * 1000)
    return best


def float_preprocess(images: list[np.ndarray], size: int) -> torch.Tensor:
    """The resize before 2026-12-06: each image to float in [0, 1], then resized on its own."""
    return torch.stack([F.interpolate(torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float().div_(255.0), size=(size, size),
                                      mode="bilinear", align_corners=False, antialias=True)[0] for a in images])


def photos(root: Path, n: int) -> list[np.ndarray]:
    files = sorted((root / "images" / "test").glob("*.jpg"))[:n] or sorted(root.rglob("*.jpg"))[:n]
    if not files:
        raise SystemExit(f"no BSDS500 photos under {root}; pass --bsds")
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def photo_args(description: str, argv: list[str] | None, *, photos: int, repeats: int) -> argparse.Namespace:
    """``--bsds`` (the BSDS500 folder), ``--photos`` and ``--repeats`` of a step timing on photos, parsed."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--bsds", type=Path, default=ROOT.parent / "shared" / "data" / "bsds500")
    p.add_argument("--photos", type=int, default=photos)
    p.add_argument("--repeats", type=int, default=repeats)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Print the three tables; 1 when ``apply_mask`` and ``np.where`` ever differ, else 0."""
    a = photo_args(__doc__.split("\n")[0], argv, photos=12, repeats=5)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    pics = photos(a.bsds, a.photos)
    all_equal = True

    print("| masked selection | np.where ms | apply_mask ms | speed-up | equal |")
    print("|---|---|---|---|---|")
    for h, w in ((288, 384), (1500, 2000)):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        sty = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        mask = np.zeros((h, w), bool)
        mask[h // 4 : h // 4 + h // 10, w // 4 : w // 4 + w // 10] = True
        t = best_ms({"where": lambda m=mask, s=sty, i=img: np.where(m[..., None], s, i),
                     "apply": lambda m=mask, s=sty, i=img: apply_mask(i, s, m)}, a.repeats, inner=20)
        same = bool(np.array_equal(np.where(mask[..., None], sty, img), apply_mask(img, sty, mask)))
        all_equal &= same
        print(f"| {w} × {h}, mask {mask.mean():.1%} | {t['where']:.2f} | {t['apply']:.2f} | "
              f"{t['where'] / t['apply']:.1f}× | {same} |")

    batch = [np.asarray(Image.fromarray(pics[i % len(pics)]).resize((384, 288))) for i in range(16)]
    t = best_ms({"float": lambda: float_preprocess(batch, 128),
                 "u8": lambda: preprocess_images(batch, 128, (0.0,) * 3, (1.0,) * 3)}, a.repeats, inner=3)
    diffs = []
    for pic in pics:
        for size in (128, 224):
            d = (preprocess_images([pic], size, (0.0,) * 3, (1.0,) * 3) - float_preprocess([pic], size)).abs() * 255
            diffs.append((float(d.max()), float(d.mean())))
    dm = np.array(diffs)
    print()
    print("| classifier resize, 16 × (384 × 288) → 128² | float, one by one: ms/img | 8-bit, one call: ms/img | "
          "speed-up | grey levels apart: max / mean |")
    print("|---|---|---|---|---|")
    print(f"| {len(pics)} BSDS500 photos at 128 and 224 for the difference | {t['float'] / 16:.3f} | {t['u8'] / 16:.3f} | "
          f"{t['float'] / t['u8']:.1f}× | {dm[:, 0].max():.2f} / {dm[:, 1].mean():.2f} |")

    print()
    print("| blur, longer side | full resolution ms | shrunk copy ms | speed-up | grey levels apart: mean / 99.9th pct / max |")
    print("|---|---|---|---|---|")
    for side in (256, 640, 1024, 1925):
        rows = []
        for pic in pics:
            s = side / max(pic.shape[:2])
            im = np.asarray(Image.fromarray(pic).resize((max(1, round(pic.shape[1] * s)), max(1, round(pic.shape[0] * s)))))
            t = best_ms({"full": lambda im=im: blur(im, full_resolution=True), "fast": lambda im=im: blur(im)},
                        max(1, a.repeats // 2))
            d = np.abs(blur(im).astype(int) - blur(im, full_resolution=True).astype(int))
            rows.append((t["full"], t["fast"], d.mean(), np.percentile(d, 99.9), d.max()))
        r = np.array(rows)
        print(f"| {side} | {r[:, 0].mean():.1f} | {r[:, 1].mean():.1f} | {r[:, 0].mean() / r[:, 1].mean():.1f}× | "
              f"{r[:, 2].mean():.2f} / {r[:, 3].max():.0f} / {r[:, 4].max():.0f} |")
    print()
    print("command: python bench/shared_steps.py " + " ".join(sys.argv[1:] if argv is None else argv))
    return 0 if all_equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
