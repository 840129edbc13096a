"""Seconds per training step of ``veil train`` at ``--precision fp32`` vs ``bf16``.

Times the optimizer step that :func:`veil.train.train` runs (forward and loss
under ``torch.autocast`` when bf16, backward, AdamW) on random batches, after
two warm-up steps, for each precision and memory layout.

    .venv/bin/python bench/train_speed.py --arch resnet50 --input-size 224 --batch-size 32
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from veil.classify.arch import build_model

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 3, args.input_size, args.input_size, generator=gen)
    y = torch.randint(0, 2, (args.batch_size,), generator=gen)
    print(f"{args.arch} at {args.input_size} px, batch {args.batch_size}, {args.threads} threads, "
          f"median of {args.steps} steps after 2 warm-up steps\n")
    print("| precision | layout | s/step | s/image |\n|---|---|---|---|")
    for precision in ("fp32", "bf16"):
        for layout in ("contiguous", "channels_last"):
            torch.manual_seed(0)
            model = build_model(args.arch, 2)
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            model = model.to(memory_format=fmt)
            xb = x.to(memory_format=fmt)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            model.train()
            times = []
            for i in range(args.steps + 2):
                t = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                    loss = torch.nn.functional.cross_entropy(model(xb).float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if i >= 2:
                    times.append(time.perf_counter() - t)
            med = sorted(times)[len(times) // 2]
            print(f"| {precision} | {layout} | {med:.2f} | {med / args.batch_size:.3f} |", flush=True)


if __name__ == "__main__":
    main()
