"""FullGrad speed: Veil's single-pass FullGrad against pytorch-grad-cam's ``FullGrad``.

Random-init torchvision ResNets (no weights are downloaded) whose BatchNorm
statistics are randomised with a fixed seed, so that every bias-gradient term is
non-zero (a fresh BatchNorm has zero effective bias). Both implementations get
the same preprocessed input and target the unsafe log-odds; each is warmed up,
then timed ``--repeats`` times, interleaved so that background load hits both
alike. A plain forward + input-gradient backward is timed as the floor.

    python bench/attribution.py [--archs resnet18 resnet50] [--size 224] [--repeats 5]

Prints a markdown table for ``docs/benchmarks.md`` and the command that made it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch
import torchvision

from veil.attribution.cam import UnsafeScoreModule
from veil.attribution.fullgrad import fullgrad_saliency
from veil.classify.torch import TorchClassifier


def randomize_batchnorm(net: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if not isinstance(m, torch.nn.BatchNorm2d):
                continue
            if m.running_mean is None or m.running_var is None:
                continue
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.copy_(torch.randn(c, generator=g) * 0.5)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_arch(arch: str, size: int, repeats: int, warmup: int, seed: int) -> dict[str, Any]:
    from pytorch_grad_cam import FullGrad
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(seed)
    net = getattr(torchvision.models, arch)(weights=None, num_classes=2)
    randomize_batchnorm(net, seed)
    clf = TorchClassifier(net, ["safe", "unsafe"], ["unsafe"], input_size=size)
    image = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    x = clf.torch_input(image)
    reference = FullGrad(UnsafeScoreModule(clf), [])
    targets = [ClassifierOutputTarget(0)]

    def ours() -> np.ndarray:
        return fullgrad_saliency(clf, x)[0].numpy()

    def theirs() -> np.ndarray:
        return reference(input_tensor=x.clone(), targets=targets)[0]

    def floor() -> tuple[torch.Tensor, ...]:
        xg = x.clone().requires_grad_(True)
        return torch.autograd.grad(clf.torch_unsafe_score(xg).sum(), xg)

    for _ in range(warmup):
        ours(), theirs(), floor()
    times: dict[str, list[float]] = {"ours": [], "theirs": [], "floor": []}
    for _ in range(repeats):
        times["ours"].append(timed(ours))
        times["theirs"].append(timed(theirs))
        times["floor"].append(timed(floor))
    a, b = ours(), theirs()
    reference.activations_and_grads.release()
    n_bias_layers = sum(
        1 for m in net.modules() if type(m) in (torch.nn.Conv2d, torch.nn.BatchNorm2d)
        and getattr(m, "bias", None) is not None
    )
    row: dict[str, Any] = {
        "arch": arch,
        "layers": n_bias_layers,
        # Best of N is the least load-distorted estimate on a shared host; medians kept for context.
        **{k: min(v) for k, v in times.items()},
        **{f"{k}_median": statistics.median(v) for k, v in times.items()},
        "corr": float(np.corrcoef(a.ravel(), b.ravel())[0, 1]),
        "maxdiff": float(np.abs(a - b).max()),
    }
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["resnet18", "resnet50"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rows = [bench_arch(a, args.size, args.repeats, args.warmup, args.seed) for a in args.archs]
    print(f"Command: `python {' '.join(['bench/attribution.py', *sys.argv[1:]])}`")
    print(
        f"Machine: {os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; input {args.size}×{args.size}, "
        f"best (median) of {args.repeats} interleaved runs after {args.warmup} warm-up; "
        f"load average at the end {os.getloadavg()[0]:.1f}"
    )
    print()
    print("| model | bias layers | Veil FullGrad (s) | pytorch-grad-cam FullGrad (s) | speed-up "
          "| forward+backward floor (s) | correlation | max abs diff |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['arch']} | {r['layers']} | {r['ours']:.2f} ({r['ours_median']:.2f}) "
            f"| {r['theirs']:.2f} ({r['theirs_median']:.2f}) "
            f"| {r['theirs'] / r['ours']:.1f}× ({r['theirs_median'] / r['ours_median']:.1f}×) "
            f"| {r['floor']:.2f} ({r['floor_median']:.2f}) | {r['corr']:.6f} | {r['maxdiff']:.1e} |"
        )


if __name__ == "__main__":
    main()
