"""CIELAB conversion: scikit-image's ``rgb2lab`` against ``veil.segment.bass.rgb_to_lab``.

The colour merge after BASS and the figure search of the object extent convert whole images to CIELAB;
since 2026-12-05 they use the lookup table and numba loop BASS has (the same numbers to 1e-12, tested in
tests/segment/test_bass.py). This script times both on random images of the sizes they see (the extent's
384-px copy, the pipeline's 1024-px working copy), best of ``--repeat``, one thread::

    python bench/lab_speed.py --repeat 5
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def best(fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(image)
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    from skimage.color import rgb2lab

    from veil.segment.bass import rgb_to_lab

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| image | skimage rgb2lab (ms) | rgb_to_lab (ms) | faster | largest difference |\n|---|---|---|---|---|")
    for h, w in ((288, 384), (768, 1024), (1500, 2000)):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        rgb_to_lab(img[:8, :8])  # (numba's compilation, or its cache, outside the timing)
        a, b = best(rgb2lab, img, args.repeat), best(rgb_to_lab, img, args.repeat)
        diff = float(np.abs(rgb2lab(img) - rgb_to_lab(img)).max())
        print(f"| {w} × {h} | {1e3 * a:.1f} | {1e3 * b:.1f} | {a / b:.1f}× | {diff:.1e} |")


if __name__ == "__main__":
    main()
