"""Scoring a torch card: its module against the same module exported to ONNX and run by onnxruntime.

Builds each architecture (random weights: the speed does not depend on them), loads it as a model
card would (channels-last convolution weights), and times ``predict_proba`` on the same images both
ways, preprocessing included, alternating call by call: once with the module (``scoring="torch"``)
and once through onnxruntime (``score_with_onnxruntime``). Batches of 1 (a full-size check), 5 (the
light views) and 16 (the extent's candidates). Medians, milliseconds per image, and the largest
probability difference. Also the one-time cost: the export, and a load from the cache.

    python bench/torch_scoring.py --archs resnet18 mobilenet_v3_small shufflenet_v2_x1_0 --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="+", default=["resnet18", "mobilenet_v3_small", "shufflenet_v2_x1_0"])
    ap.add_argument("--input-size", type=int, default=128)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 5, 16])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="veil-bench-cache-") as cache:  # (a cold cache, not the user's; removed after)
        os.environ["VEIL_CACHE_DIR"] = cache
        _run(args)


def _run(args: argparse.Namespace) -> None:
    import torch

    from veil.classify.arch import build_model
    from veil.classify.torch import TorchClassifier

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (288, 384, 3), dtype=np.uint8) for _ in range(max(args.batches))]
    print(f"torch {torch.__version__}, {args.threads} thread(s), input {args.input_size} px, images 384 × 288, "
          f"median of {args.repeats}\n")
    print("| arch | export s | load from cache s | batch | torch ms/img | onnxruntime ms/img | torch / onnxruntime "
          "| max abs Δp |")
    print("|---|---|---|---|---|---|---|---|")
    for arch in args.archs:
        torch.manual_seed(0)
        module = build_model(arch, 2).eval()
        module.to(memory_format=torch.channels_last)
        plain = TorchClassifier(module, ["safe", "unsafe"], ["unsafe"], input_size=args.input_size)
        fast = TorchClassifier(module, ["safe", "unsafe"], ["unsafe"], input_size=args.input_size)
        t = time.perf_counter()
        fast.score_with_onnxruntime()
        export_s = time.perf_counter() - t
        t = time.perf_counter()
        TorchClassifier(module, ["safe", "unsafe"], ["unsafe"], input_size=args.input_size).score_with_onnxruntime()
        cached_s = time.perf_counter() - t
        for b in args.batches:
            batch = images[:b]
            times: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
            plain.predict_proba(batch), fast.predict_proba(batch)  # (warm-up)
            for _ in range(args.repeats):
                for name, clf in (("torch", plain), ("onnxruntime", fast)):
                    t = time.perf_counter()
                    clf.predict_proba(batch)
                    times[name].append((time.perf_counter() - t) / b * 1000)
            dp = float(np.abs(plain.predict_proba(batch) - fast.predict_proba(batch)).max())
            mt, mo = float(np.median(times["torch"])), float(np.median(times["onnxruntime"]))
            print(f"| {arch} | {export_s:.2f} | {cached_s:.2f} | {b} | {mt:.2f} | {mo:.2f} | {mt / mo:.2f}× | {dp:.1e} |")
    print("\ncommand: python bench/torch_scoring.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
