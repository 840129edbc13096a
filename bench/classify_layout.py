"""Classifier speed by weight layout: channels-last (what ``load_model_card`` keeps) against NCHW.

For each architecture, a model card with random-init torchvision weights (BatchNorm statistics
randomised with a fixed seed as in ``bench/attribution.py``; nothing is downloaded) is written to a
temporary folder and loaded with :func:`veil.classify.card.load_model_card`, which keeps convolution
weights channels-last. A deep copy converted back to the contiguous (NCHW) layout is the comparator.
Both classify the same random images, one at a time and in batches, and compute FullGrad on one
image, interleaved and best of ``--repeats`` so that background load hits both alike. The largest difference between the
two layouts' probabilities is printed too.

    python bench/classify_layout.py [--archs resnet18 resnet50 mobilenet_v3_small efficientnet_b0]
        [--size 128] [--batch 8] [--repeats 5] [--threads 1]

Prints a markdown table for ``docs/benchmarks.md`` and the command that made it.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision

from veil.attribution import ATTRIBUTIONS
from veil.classify.card import load_model_card
from veil.classify.torch import TorchClassifier


def write_card(folder: Path, arch: str, size: int, seed: int) -> Path:
    """A two-label card for ``arch`` with random weights, as ``veil train`` would write one."""
    # bench/attribution.py: this script's folder is on sys.path
    from attribution import randomize_batchnorm

    torch.manual_seed(seed)
    net = getattr(torchvision.models, arch)(weights=None, num_classes=2)
    randomize_batchnorm(net, seed)
    torch.save(net.state_dict(), folder / f"{arch}.pt")
    card = {"arch": arch, "weights": f"{arch}.pt", "labels": ["safe", "unsafe"], "unsafe_labels": ["unsafe"],
            "input_size": size, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "name": arch}
    path = folder / f"{arch}.json"
    path.write_text(json.dumps(card))
    return path


def as_nchw(clf: TorchClassifier) -> TorchClassifier:
    """A copy of ``clf`` whose weights use the contiguous (NCHW) layout."""
    other = copy.deepcopy(clf)
    other.module.to(memory_format=torch.contiguous_format)
    return other


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_arch(folder: Path, arch: str, size: int, batch: int, repeats: int, seed: int) -> dict[str, Any]:
    last = load_model_card(write_card(folder, arch, size, seed))
    plain = as_nchw(last)
    conv = next(m for m in last.module.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last), "the card did not load channels-last"
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(batch)]
    fullgrad = ATTRIBUTIONS.get("fullgrad")
    jobs: dict[str, Callable[[TorchClassifier], object]] = {
        "one": lambda c: [c.predict_proba([im]) for im in images],
        "batch": lambda c: c.predict_proba(images),
        "fullgrad": lambda c: fullgrad(images[0], c),
    }
    times: dict[tuple[str, str], list[float]] = {(j, k): [] for j in jobs for k in ("last", "plain")}
    for i in range(repeats + 1):
        for j, fn in jobs.items():
            for k, c in (("last", last), ("plain", plain)) if i % 2 else (("plain", plain), ("last", last)):
                t = timed(lambda fn=fn, c=c: fn(c))
                if i:  # the first round warms up
                    times[(j, k)].append(t)
    diff = float(np.abs(last.predict_proba(images) - plain.predict_proba(images)).max())
    best = {key: min(v) for key, v in times.items()}
    return {
        "arch": arch,
        "one_plain": best[("one", "plain")] / batch, "one_last": best[("one", "last")] / batch,
        "batch_plain": best[("batch", "plain")] / batch, "batch_last": best[("batch", "last")] / batch,
        "fg_plain": best[("fullgrad", "plain")], "fg_last": best[("fullgrad", "last")],
        "maxdiff": diff,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0"])
    parser.add_argument("--size", type=int, default=128, help="the cards' input size")
    parser.add_argument("--batch", type=int, default=8, help="images per batch (and per one-at-a-time round)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        rows = [bench_arch(Path(tmp), a, args.size, args.batch, args.repeats, args.seed) for a in args.archs]
    print(f"Command: `python {' '.join(['bench/classify_layout.py', *sys.argv[1:]])}`")
    print(
        f"Machine: {os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; input {args.size}×{args.size}, "
        f"best of {args.repeats} interleaved rounds after one warm-up; "
        f"load average at the end {os.getloadavg()[0]:.1f}"
    )
    print()
    print("| model | ms/img one at a time: NCHW → channels-last | speed-up | ms/img in batches of "
          f"{args.batch}: NCHW → channels-last | speed-up | FullGrad ms: NCHW → channels-last | speed-up "
          "| max prob. difference |")
    print("|---|---|---:|---|---:|---|---:|---:|")
    for r in rows:
        print(
            f"| {r['arch']} | {1e3 * r['one_plain']:.1f} → {1e3 * r['one_last']:.1f} "
            f"| {r['one_plain'] / r['one_last']:.2f}× "
            f"| {1e3 * r['batch_plain']:.1f} → {1e3 * r['batch_last']:.1f} "
            f"| {r['batch_plain'] / r['batch_last']:.2f}× "
            f"| {1e3 * r['fg_plain']:.0f} → {1e3 * r['fg_last']:.0f} | {r['fg_plain'] / r['fg_last']:.2f}× "
            f"| {r['maxdiff']:.1e} |"
        )


if __name__ == "__main__":
    main()
