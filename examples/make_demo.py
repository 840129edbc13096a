"""Build Veil's demo model and the bundled example images.

The demo model detects the **Veil demo mark** — a red, hand-drawn-looking
prohibition sign (a red ring crossed by one bar, usually light-filled; see
:mod:`veil.bench.synthetic`) — planted on ordinary photos. It is a stand-in
that lets ``make demo`` show the whole pipeline (classify → explain →
obfuscate → rationale) without shipping real unsafe images or weights.

Steps
-----
1. Synthesize a labelled ImageFolder (``safe/`` and ``unsafe/``) in
   ``--workdir``: random crops of scikit-image's sample photos and, when
   present, BSDS500 train/val photos (``--backgrounds``), each with 0–3
   distractor shapes; half of them also carry the mark (8–25 % of the shorter
   side, any position, rotated ±45°).
2. Train ``--arch`` from scratch with :func:`veil.train.train` (seeded split
   80/10/10, class-weighted loss, early stopping, resumable).
3. Copy the card, weights and split list to ``examples/demo-model/``.
4. Write ``examples/images/``: the mark on held-out photos (scikit-image
   samples never used for training), plain photos, one with distractors only,
   and ground-truth masks in ``examples/masks/``.

Usage::

    .venv/bin/python examples/make_demo.py            # everything (~15-20 min on 2 idle CPU cores)
    .venv/bin/python examples/make_demo.py --images-only
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from veil.bench.synthetic import (
    HELDOUT_SAMPLES,
    TRAIN_SAMPLES,
    make_composite,
    random_crop,
    sample_backgrounds,
)
from veil.classify.card import write_model_card
from veil.image import IMAGE_EXTENSIONS, load_image

HERE = Path(__file__).resolve().parent
DEFAULT_BSDS = Path("/work/shared/data/bsds500/images")

DESCRIPTION = (
    "DEMO ONLY. Detects the 'Veil demo mark' - a synthetic red prohibition-style sign (a red ring "
    "crossed by one bar, usually light-filled, hand-drawn look) planted on ordinary photos at 8-25% of "
    "the shorter image side. 'unsafe' means exactly 'the mark is present'. Trained from scratch by "
    "examples/make_demo.py on synthetic composites (scikit-image sample photos and BSDS500 photos as "
    "backgrounds, with look-alike distractors: the same sign in other colours, red rings without a bar, "
    "red triangles, stars, squares). It is NOT a detector of real unsafe content (nudity, violence or "
    "anything else) and must not be used as one; it exists so that the pipeline can be demonstrated and "
    "benchmarked with known ground truth."
)


def _backgrounds(extra_dirs: list[Path], max_side: int = 400) -> list[np.ndarray]:
    """scikit-image training samples plus every photo under ``extra_dirs`` (downscaled)."""
    bgs = sample_backgrounds(TRAIN_SAMPLES)
    for d in extra_dirs:
        if not d.is_dir():
            continue
        for f in sorted(d.rglob("*")):
            if f.suffix.lower() in IMAGE_EXTENSIONS:
                img = Image.fromarray(load_image(f))
                img.thumbnail((max_side, max_side))
                bgs.append(np.asarray(img))
    return bgs


def synthesize(out: Path, n: int, bgs: list[np.ndarray], seed: int, side: int) -> None:
    """Write ``n`` composites (half with the mark) to ``out/{safe,unsafe}/``; skips if complete."""
    stamp = out / "DONE.json"
    meta = {"n": n, "seed": seed, "side": side, "backgrounds": len(bgs)}
    if stamp.is_file() and json.loads(stamp.read_text()) == meta:
        print(f"dataset {out} already complete ({n} images)")
        return
    if out.exists():
        shutil.rmtree(out)
    (out / "safe").mkdir(parents=True)
    (out / "unsafe").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    # varied aspect ratios, like the photos the model will see (the classifier squashes to a square)
    shapes = [(side, side), (side * 3 // 4, side), (side, side * 3 // 4), (side * 2 // 3, side),
              (side, side * 2 // 3)]
    t = time.monotonic()
    for i in range(n):
        with_mark = i % 2 == 1
        h, w = shapes[int(rng.integers(len(shapes)))]
        bg = random_crop(bgs[int(rng.integers(len(bgs)))], (h, w), rng)
        img, _ = make_composite(bg, rng, with_symbol=with_mark)
        cls = "unsafe" if with_mark else "safe"
        Image.fromarray(img).save(out / cls / f"{i:05d}.png", compress_level=1)
        if (i + 1) % 1000 == 0:
            print(f"  {i + 1}/{n} images ({time.monotonic() - t:.0f} s)", flush=True)
    stamp.write_text(json.dumps(meta))


# name, source sample, (height, width), crop box fraction (y0, x0, y1, x1) or None, what to plant, seed
EXAMPLES = [
    ("01_coffee_mark", "coffee", (400, 600), None, "mark", 11),
    ("02_chelsea_mark", "chelsea", (320, 480), None, "mark", 12),
    ("03_rocket_mark", "rocket", (427, 640), None, "mark", 13),
    ("04_astronaut_plain", "astronaut", (384, 512), (0.0, 0.0, 0.75, 1.0), "plain", 0),
    ("05_motorcycle_plain", "stereo_motorcycle", (432, 640), None, "plain", 0),
    ("06_astronaut_distractors", "astronaut", (360, 480), (0.25, 0.0, 1.0, 1.0), "distractors", 16),
]


def write_examples(images_dir: Path, model_card: Path | None) -> list[dict]:
    """Write the bundled example images and masks; report the demo model's scores on them."""
    images_dir.mkdir(parents=True, exist_ok=True)
    (images_dir.parent / "masks").mkdir(exist_ok=True)
    photos = dict(zip(HELDOUT_SAMPLES, sample_backgrounds(HELDOUT_SAMPLES), strict=True))
    rows = []
    clf = None
    if model_card is not None and model_card.is_file():
        from veil.classify import load_classifier

        clf = load_classifier(str(model_card))
    for name, sample, (h, w), box, what, seed in EXAMPLES:
        photo = photos[sample]
        if box is not None:
            H, W = photo.shape[:2]
            y0, x0, y1, x1 = box
            photo = photo[int(y0 * H) : int(y1 * H), int(x0 * W) : int(x1 * W)]
        base = np.asarray(Image.fromarray(photo).resize((w, h), Image.Resampling.LANCZOS))
        rng = np.random.default_rng(seed)
        if what == "mark":
            # examples use filled marks: legible at a glance (see-through ones on busy red areas are hard even for people)
            img, mask = make_composite(base, rng, with_symbol=True, scale=(0.12, 0.2), n_distractors=(1, 1),
                                       fill_probability=1.0)
        elif what == "distractors":
            img, mask = make_composite(base, rng, with_symbol=False, scale=(0.12, 0.2), n_distractors=(3, 3))
        else:
            img, mask = base, np.zeros((h, w), bool)
        Image.fromarray(img).save(images_dir / f"{name}.png")
        if mask.any():
            Image.fromarray(mask.astype(np.uint8) * 255).save(images_dir.parent / "masks" / f"{name}.png")
        row = {"image": f"{name}.png", "mark": bool(mask.any()), "size": [w, h]}
        if clf is not None:
            row["unsafe_score"] = round(float(clf.unsafe_score(clf.predict_proba([img]))[0]), 4)
        rows.append(row)
        print(f"  {name}: {row}")
    return rows


def heldout_check(card_path: Path, n: int = 200, seed: int = 123) -> list[dict]:
    """Accuracy on fresh composites over the held-out photos (480x360), by mark size."""
    from veil.bench.synthetic import make_dataset
    from veil.classify import load_classifier

    clf = load_classifier(str(card_path))
    bgs = sample_backgrounds(HELDOUT_SAMPLES)
    out = []
    for lo, hi in ((0.08, 0.25), (0.04, 0.08), (0.25, 0.4)):
        imgs, labels, _ = make_dataset(n, seed, size=(360, 480), backgrounds=bgs, scale=(lo, hi))
        pred = clf.unsafe_score(clf.predict_proba(list(imgs))) >= clf.threshold
        out.append({"scale": [lo, hi], "n": n, "accuracy": round(float(np.mean(pred == labels)), 3),
                    "recall": round(float(pred[labels == 1].mean()), 3),
                    "false_positive_rate": round(float(pred[labels == 0].mean()), 3)})
    return out


def write_model_readme(model_dir: Path, card: dict, rows: list[dict], heldout: list[dict]) -> None:
    """``examples/demo-model/README.md``: what the model is, is not, and how well it does."""
    val, test = card["metrics"]["val"], card["metrics"]["test"]
    tr = card["training"]
    size_mb = (model_dir / card["weights"]).stat().st_size / 1e6
    lines = [
        "# Veil demo model: the planted-mark detector",
        "",
        "**This is a demo, not a safety model.** It answers one question: *is the Veil demo mark in the",
        "picture?* The mark is a synthetic, red, hand-drawn-looking prohibition sign (a red ring crossed by",
        "one bar, usually filled with a light colour) planted on ordinary photos. The label `unsafe` means",
        "exactly \"the mark is present\". The model knows nothing about nudity, violence or any other real",
        "unsafe content and must never be used to screen real images.",
        "",
        "It exists so that `make demo` can show the whole pipeline (classify, explain, obfuscate the",
        "smallest region, explain the decision) and so that benchmarks have exact ground truth: the",
        "region to find is the mark (see `examples/masks/`).",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | `{card['arch']}` ({card['source']}), {tr['parameters'] / 1e6:.2f} M parameters, trained from scratch |",
        f"| weights | `{card['weights']}` ({size_mb:.1f} MB, float32 state_dict) |",
        f"| input | whole image squashed to {card['input_size']}x{card['input_size']}, ImageNet mean/std |",
        f"| labels | {card['labels']} (unsafe: {card['unsafe_labels']}), threshold {card['threshold']} |",
        f"| data | {tr['generator']['n']} synthetic composites (half with the mark), seed {tr['generator']['seed']}, "
        f"{tr['generator']['backgrounds']} background photos |",
        f"| split | stratified {card['split']['sizes']} (seed {card['split']['seed']}), file lists in `{card['split']['file']}` |",
        f"| training | {tr['epochs_completed']} epochs ({tr['steps']} steps, best epoch {tr['best_epoch']}), "
        f"batch {tr['batch_size']}, AdamW lr {tr['lr']}, {tr['train_time_s'] / 60:.1f} min on {tr['device']} |",
        f"| validation | accuracy {val['accuracy']:.4f}, unsafe precision {val['precision']:.4f} / recall {val['recall']:.4f} / F1 {val['f1']:.4f} (n={val['n']}) |",
        f"| test | accuracy {test['accuracy']:.4f}, unsafe precision {test['precision']:.4f} / recall {test['recall']:.4f} / F1 {test['f1']:.4f} (n={test['n']}) |",
        "",
        "## The mark and the distractors",
        "",
        "- **Mark** (`unsafe`): red ring (stroke about 14 % of the diameter) with one red bar across it,",
        "  light filling in 75 % of cases, slightly wobbly outline, rotated so the bar runs between",
        "  horizontal and vertical, diameter 8-25 % of the shorter image side, anywhere in the image.",
        "- **Distractors** (on both classes, 0-3 per image): the same sign in blue, green, yellow, black,",
        "  white, purple or teal; red rings *without* a bar; red triangle outlines; squares, stars, plus",
        "  signs and discs in assorted colours (red included).",
        "- Backgrounds: random crops of scikit-image sample photos (camera, coins, hubble_deep_field,",
        "  immunohistochemistry, grass, gravel, brick, moon, clock, retina, page, text, colorwheel) and",
        "  BSDS500 train/val photos. astronaut, coffee, chelsea, rocket and stereo_motorcycle are held",
        "  out for the bundled examples.",
        "",
        "## Scores on the bundled examples",
        "",
        "| image | mark planted | unsafe score |",
        "|---|---|---|",
        *[f"| `{r['image']}` | {'yes' if r['mark'] else 'no'} | {r.get('unsafe_score', 'n/a')} |" for r in rows],
        "",
        "## Held-out photos and known limits",
        "",
        "Fresh composites (480x360, seed 123, half with the mark) over the five held-out photos, by mark",
        "diameter as a fraction of the shorter side (training used 8-25 %):",
        "",
        "| mark size | n | accuracy | recall | false-positive rate |",
        "|---|---|---|---|---|",
        *[f"| {int(h['scale'][0] * 100)}-{int(h['scale'][1] * 100)} % | {h['n']} | {h['accuracy']:.3f} | "
          f"{h['recall']:.3f} | {h['false_positive_rate']:.3f} |" for h in heldout],
        "",
        "- Photos unlike the training backgrounds cost a few points against the in-distribution test",
        "  split above; marks smaller than 8 % of the side are mostly missed.",
        "- See-through marks on red surfaces (the saucer in `01_coffee_mark.png` is close to that) are",
        "  the hardest case; the bundled examples use filled marks.",
        "- Other red circular signs (a real no-entry sign) may well fire it.",
        "",
        "## Reproduce",
        "",
        "```",
        ".venv/bin/python examples/make_demo.py            # synthesize, train, write this folder and examples/images",
        "```",
        "",
        "and check the recorded test accuracy on the same split (after regenerating the data in",
        "`/tmp/veil-demo/data`):",
        "",
        "```python",
        "from veil.train import evaluate",
        "evaluate(\"examples/demo-model/model.json\", \"/tmp/veil-demo/data\")",
        "```",
        "",
    ]
    (model_dir / "README.md").write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/veil-demo"),
                    help="where the synthetic training set and checkpoints go (not bundled)")
    ap.add_argument("--backgrounds", type=Path, action="append", default=None,
                    help="extra background photo folder(s); default BSDS500 train+val when present")
    ap.add_argument("--n", type=int, default=8000, help="synthetic images (half with the mark)")
    ap.add_argument("--side", type=int, default=160, help="longer side of the synthetic images")
    ap.add_argument("--arch", default="resnet10t")
    ap.add_argument("--input-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--images-only", action="store_true", help="only (re)write examples/images")
    ap.add_argument("--no-resume", action="store_true")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    model_dir = HERE / "demo-model"
    card_path = model_dir / "model.json"
    if not args.images_only:
        extra = args.backgrounds
        if extra is None:
            extra = [DEFAULT_BSDS / "train", DEFAULT_BSDS / "val"] if DEFAULT_BSDS.is_dir() else []
        bgs = _backgrounds(extra)
        print(f"{len(bgs)} background photos ({len(TRAIN_SAMPLES)} scikit-image samples)")
        data_dir = args.workdir / "data"
        synthesize(data_dir, args.n, bgs, args.seed, args.side)

        from veil.train import train

        run_card = args.workdir / "model" / "model.json"
        t0 = time.monotonic()
        card = train(
            data_dir, arch=args.arch, out=run_card, input_size=args.input_size, epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, seed=args.seed, patience=args.patience,
            resume=not args.no_resume, name="veil-demo-mark", description=DESCRIPTION,
        )
        print(f"trained in {time.monotonic() - t0:.0f} s: val {card['metrics']['val']}, test {card['metrics']['test']}")
        card["training"]["data"] = "synthetic composites from examples/make_demo.py (not bundled)"
        card["training"]["generator"] = {"script": "examples/make_demo.py", "n": args.n, "seed": args.seed,
                                         "side": args.side, "backgrounds": len(bgs)}
        model_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run_card.parent / card["weights"], model_dir / card["weights"])
        shutil.copy2(run_card.parent / card["split"]["file"], model_dir / card["split"]["file"])
        write_model_card(card_path, card)
        print(f"wrote {card_path}")
    rows = write_examples(HERE / "images", card_path)
    (HERE / "expected.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    if card_path.is_file():
        heldout = heldout_check(card_path)
        print(f"held-out photos: {heldout}")
        write_model_readme(model_dir, json.loads(card_path.read_text(encoding="utf-8")), rows, heldout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
