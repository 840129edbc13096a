"""Train a large (ResNet-50-class) demo-mark detector for the speed benchmark of ``bench/cse.py``.

The bundled demo model is a 4.9 M-parameter resnet10t at 128 px: on it the
attribution is a small share of the pipeline, so the speed of Veil's FullGrad
hardly shows. This script trains the model the speed target is really about, a
torchvision ``resnet50`` at 224 px, on the same kind of synthetic composites as
``examples/make_demo.py`` (the demo mark planted on scikit-image and BSDS500
photos, with look-alike distractors). The weights (90 MB) are not bundled; they
go to ``--workdir`` (default ``.bench-cache/resnet50-mark/``, ignored by git)
and the run resumes from its checkpoint when interrupted.

Training uses bfloat16 autocast (``veil train --precision bf16``): about 2.5×
faster than float32 on a CPU with AMX. The card and weights it writes are
ordinary float32 ones and load like any other card.

Usage::

    .venv/bin/python bench/train_large.py                 # ~1 h on 2 idle CPU cores (AMX)
    .venv/bin/python bench/cse.py --speed-model .bench-cache/resnet50-mark/model/model.json ...
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from make_demo import DEFAULT_BSDS, _backgrounds, heldout_check, synthesize  # noqa: E402

DESCRIPTION = (
    "BENCHMARK ONLY. A resnet50 detector of the synthetic 'Veil demo mark' (see examples/demo-model), "
    "trained from scratch by bench/train_large.py so that bench/cse.py can time the pipeline on a "
    "ResNet-50-sized model. 'unsafe' means exactly 'the mark is present'; it is not a detector of real "
    "unsafe content."
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=ROOT / ".bench-cache" / "resnet50-mark")
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--n", type=int, default=6000, help="synthetic images (half with the mark)")
    ap.add_argument("--side", type=int, default=288, help="longer side of the synthetic images")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = ap.parse_args(argv)

    import torch

    from veil.classify.card import write_model_card
    from veil.train import train

    torch.set_num_threads(args.threads)
    extra = [DEFAULT_BSDS / "train", DEFAULT_BSDS / "val"] if DEFAULT_BSDS.is_dir() else []
    bgs = _backgrounds(extra)
    data_dir = args.workdir / "data"
    synthesize(data_dir, args.n, bgs, args.seed, args.side)
    card_path = args.workdir / "model" / "model.json"
    t0 = time.monotonic()
    card = train(data_dir, arch=args.arch, out=card_path, input_size=args.input_size, epochs=args.epochs,
                 batch_size=args.batch_size, lr=args.lr, seed=args.seed, patience=None,
                 precision=args.precision, name=f"veil-bench-mark-{args.arch}", description=DESCRIPTION)
    print(f"trained in {time.monotonic() - t0:.0f} s: val {card['metrics']['val']}, test {card['metrics']['test']}")
    heldout = heldout_check(card_path)
    card["training"]["generator"] = {"script": "bench/train_large.py", "n": args.n, "seed": args.seed,
                                     "side": args.side, "backgrounds": len(bgs)}
    card["heldout"] = heldout
    write_model_card(card_path, card)
    print(f"held-out photos: {heldout}")
    print(f"wrote {card_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
