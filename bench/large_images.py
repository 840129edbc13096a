"""Time the default pipeline on one bundled example scaled up to camera sizes.

Segmentation cost grows with the pixel count, so the pipeline segments a copy whose longer
side is at most ``segment_size`` (640 by default) and scales the labels back up. This script
times every stage with and without that, and reports the obfuscated share of the image so
that the two can be compared.

    python bench/large_images.py
    python bench/large_images.py --sides 480 1600 4000 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from veil import SafeguardConfig, Safeguarder, load_image  # noqa: E402

STAGES = ("classify", "attribution", "segmentation", "merge", "search")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default=str(ROOT / "examples" / "images" / "02_chelsea_mark.png"))
    ap.add_argument("--model", default=str(ROOT / "examples" / "demo-model" / "model.json"))
    ap.add_argument("--sides", type=int, nargs="+", default=[480, 1600, 4000], help="longer sides to test")
    ap.add_argument("--repeats", type=int, default=2, help="runs per size (the fastest is kept)")
    args = ap.parse_args()

    base = load_image(args.image)
    runners = {
        size: Safeguarder(SafeguardConfig(models=(args.model,), rationale=None, segment_size=size))
        for size in (640, None)
    }
    runners[640].run(base)  # warm-up: numba kernels, lazy model loading
    runners[None].run(base)
    print("| longer side | megapixels | segment_size | s/img | " + " | ".join(STAGES) +
          " | depth | area % |\n|---|---|---|---|" + "---|" * len(STAGES) + "---|---|")
    for side in args.sides:
        h, w = base.shape[:2]
        scale = side / max(h, w)
        img = np.asarray(Image.fromarray(base).resize((round(w * scale), round(h * scale)), Image.Resampling.BICUBIC))
        for size, sg in runners.items():
            best, res = float("inf"), None
            for _ in range(args.repeats):
                t = time.perf_counter()
                r = sg.run(img)
                if (elapsed := time.perf_counter() - t) < best:
                    best, res = elapsed, r
            assert res is not None
            cells = " | ".join(f"{res.timings.get(st, 0.0):.2f}" for st in STAGES)
            print(f"| {max(img.shape[:2])} | {img.shape[0] * img.shape[1] / 1e6:.1f} | {size or 'full'} | "
                  f"{best:.2f} | {cells} | {res.depth} | {100 * res.obfuscated_fraction:.2f} |", flush=True)
    print(f"\ncommand: python {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
