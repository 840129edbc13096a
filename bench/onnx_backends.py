"""Plain scoring of an ONNX classifier: onnxruntime against the onnx2torch conversion.

Times ``predict_proba`` (onnxruntime, preprocessing included) and the converted torch module's
forward under ``torch.inference_mode`` (preprocessing included) on the same images, alternating
call by call, at batch 1 (how the greedy search classifies candidates) and batch 8. Reports
medians, seconds per image, and the largest probability difference between the two.

    python bench/onnx_backends.py --n 8 --repeats 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from veil.classify import load_classifier  # noqa: E402
from veil.image import load_image  # noqa: E402

DATA = Path("/work/shared/data/bsds500/images/val")


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="opennsfw", help="registered name or ONNX card")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    clf = load_classifier(args.model)
    module = clf.torch_module()  # type: ignore[attr-defined]
    images = [load_image(p) for p in sorted(args.data.glob("*.jpg"))[: args.n]]

    def torch_proba(batch: list[np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            out = module(torch.cat([clf.torch_input(im) for im in batch]))  # type: ignore[attr-defined]
        return out.numpy() if clf.config.get("output") == "probabilities" else torch.softmax(out, 1).numpy()

    torch_proba(images[:1]), clf.predict_proba(images[:1])  # warm-up
    print(f"{args.model}: {len(images)} photos from {args.data}, torch threads {torch.get_num_threads()}\n")
    print("| batch | onnxruntime s/img | torch s/img | torch / onnxruntime | max |Δp| |\n|---|---|---|---|---|")
    for bs in (1, 8):
        t_ort, t_torch, diff = [], [], 0.0
        for _ in range(args.repeats):
            for i in range(0, len(images), bs):
                batch = images[i : i + bs]
                t = time.perf_counter()
                a = clf.predict_proba(batch)
                t_ort.append((time.perf_counter() - t) / len(batch))
                t = time.perf_counter()
                b = torch_proba(batch)
                t_torch.append((time.perf_counter() - t) / len(batch))
                diff = max(diff, float(np.abs(a - b).max()))
        o, p = float(np.median(t_ort)), float(np.median(t_torch))
        print(f"| {bs} | {o:.3f} | {p:.3f} | {p / o:.1f}× | {diff:.1e} |")
    print(f"\ncommand: python {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
