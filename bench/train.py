"""``veil train`` with its defaults against a plain training loop, on small planted objects.

Datasets (generated here; ``safe/`` and ``unsafe/`` ImageFolder trees under ``train/`` and ``test/``):

``small``
    Random square crops of BSDS500 photos (train and val photos for the training tree, test
    photos for the test tree, so test backgrounds are unseen), each with 2-4 harmless
    distractor shapes (triangles, squares, stars, plus signs, discs, in any colour, red
    included). Each unsafe photo also carries one Veil demo mark (a red ring crossed by a bar,
    drawn by :mod:`veil.bench.synthetic`); every shape's bounding square covers 2-5 % of the
    image. Safe photos get one distractor more, so the number of shapes tells nothing.
``demo``
    The bundled demo model's data: ``examples/make_demo.py``'s generator (scikit-image
    samples and BSDS500 train/val photos, varied aspect ratios, 0-3 distractors, marks of
    8-25 % of the shorter side), at a smaller ``n``.

Implementations, each trained on the same images (veil's 80 % training split of ``train/``)
and scored on ``test/``:

``plain``
    The loop of issue #17: a torchvision architecture from scratch, every image held in
    memory (squashed to ``input_size`` exactly like Veil's classifier), AdamW with a
    one-cycle schedule peaking at 2e-3, batch 64, horizontal flips only, the last epoch's
    weights. Also scored after recomputing BatchNorm statistics over its training images,
    in file order (``test_accuracy_bn_recal``; class-sorted batches) and shuffled
    (``test_accuracy_bn_recal_shuffled``; mixed batches, as veil does).
``veil``
    :func:`veil.train.train` with its defaults; only the architecture, input size, epochs and
    seed are given.
``veil-before``
    The same call on ``src/veil/train.py`` as of ``--before-rev`` (the defaults before
    issue #17), read with ``git show``.

Results are appended to ``--results`` (JSON lines; configurations already there are
skipped, so an interrupted run resumes) and printed as a markdown table.

    # the scaled-down comparison recorded in docs/benchmarks.md (seed 0 was the tuning seed)
    python bench/train.py --dataset small --n 1000 --test-n 400 --size 64 --input-size 64 \\
        --seeds 1 --archs mobilenet_v3_small resnet18 --impls plain veil
    # the issue's setup (4,000 photos at 160 px, 300 test photos; resnet18 ~6.5 min/epoch on
    # 2 free cores, mobilenet_v3_small ~1 min/epoch on one thread)
    python bench/train.py --dataset small --n 4000 --test-n 300 --size 160 --input-size 160 \\
        --seeds 1 --archs mobilenet_v3_small --impls plain veil
    # diagnosis: one change to the plain loop, or veil on another split/initialisation seed
    python bench/train.py --seeds 0 --impls plain --plain-args '{"schedule": "veil"}' --tag P1
    python bench/train.py --seeds 0 --impls veil --veil-args '{"seed": 100}' --tag V0-seed100
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from veil.bench.synthetic import random_crop  # noqa: E402
from veil.image import IMAGE_EXTENSIONS, load_image  # noqa: E402

BSDS = Path("/work/shared/data/bsds500/images")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def _photos(dirs: list[Path], max_side: int = 400) -> list[np.ndarray]:
    from PIL import Image

    out = []
    for d in dirs:
        for f in sorted(d.glob("*")):
            if f.suffix.lower() in IMAGE_EXTENSIONS:
                img = Image.fromarray(load_image(f))
                img.thumbnail((max_side, max_side))
                out.append(np.asarray(img))
    if not out:
        raise SystemExit(f"no background photos under {[str(d) for d in dirs]}; pass --bsds")
    return out


RED = ((215, 25, 30), (230, 20, 40), (200, 10, 20))
DISTRACTOR_KINDS = ("triangle", "square", "star", "plus", "disc")


def small_object_image(background: np.ndarray, rng: np.random.Generator, size: int,
                       unsafe: bool) -> np.ndarray:
    """One ``size``² composite: 2-4 harmless shapes, plus the Veil demo mark if ``unsafe``.

    Every shape's bounding square covers 2-5 % of the image. Distractors are triangles,
    squares, stars, plus signs and discs in any colour, red included, so neither "red" nor
    "a shape" gives the label away; only the mark (a red ring crossed by a bar) does. Safe
    images get one distractor more, so the number of shapes carries no signal.
    """
    from veil.bench.synthetic import _ANY_COLOUR, _FILLS, _paste, _shape_patch

    canvas = random_crop(background, (size, size), rng).copy()
    kinds = [str(rng.choice(DISTRACTOR_KINDS)) for _ in range(int(rng.integers(2, 5)) + (0 if unsafe else 1))]
    if unsafe:
        kinds.insert(int(rng.integers(len(kinds) + 1)), "mark")
    placed: list[tuple[int, int, int]] = []
    for kind in kinds:
        d = int(round(size * np.sqrt(rng.uniform(0.02, 0.05))))
        colour = RED[int(rng.integers(len(RED)))] if kind == "mark" else _ANY_COLOUR[int(rng.integers(len(_ANY_COLOUR)))]
        fill = _FILLS[int(rng.integers(len(_FILLS)))] if rng.random() < 0.75 else None
        angle = float(rng.uniform(-45, 45)) if kind == "mark" else float(rng.uniform(-180, 180))
        patch = _shape_patch(kind, d, colour, rng, fill=fill, angle=angle)
        for _ in range(30):  # anywhere inside the frame, not on top of an earlier shape when avoidable
            cx, cy = (int(v) for v in rng.integers(d // 2 + 1, size - d // 2 - 1, size=2))
            if all((cx - x) ** 2 + (cy - y) ** 2 > ((d + e) / 2 + 1) ** 2 for x, y, e in placed):
                break
        placed.append((cx, cy, d))
        _paste(canvas, patch, cx, cy)
    return canvas


def make_small_object_data(out: Path, n: int, test_n: int, size: int, seed: int, bsds: Path) -> Path:
    """Write ``out/train`` (``n`` images) and ``out/test`` (``test_n``), half unsafe; skips when complete."""
    from PIL import Image

    stamp = out / "DONE.json"
    meta = {"kind": "small-v2", "n": n, "test_n": test_n, "size": size, "seed": seed}
    if stamp.is_file() and json.loads(stamp.read_text()) == meta:
        return out
    t = time.monotonic()
    for part, count, dirs, sub in (("train", n, [bsds / "train", bsds / "val"], 0),
                                   ("test", test_n, [bsds / "test"], 1)):
        bgs = _photos(dirs)
        rng = np.random.default_rng([seed, sub])
        for cls in ("safe", "unsafe"):
            (out / part / cls).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            unsafe = i % 2 == 1
            img = small_object_image(bgs[int(rng.integers(len(bgs)))], rng, size, unsafe)
            cls = "unsafe" if unsafe else "safe"
            Image.fromarray(img).save(out / part / cls / f"{i:05d}.png", compress_level=1)
    stamp.write_text(json.dumps(meta))
    print(f"generated {out} ({n} + {test_n} images, {time.monotonic() - t:.0f} s)", flush=True)
    return out


def make_demo_data(out: Path, n: int, test_n: int, size: int, seed: int, bsds: Path) -> Path:
    """examples/make_demo.py's generator: ``out/train`` and ``out/test`` (another seed)."""
    sys.path.insert(0, str(ROOT / "examples"))
    import make_demo  # type: ignore[import-not-found]

    bgs = make_demo._backgrounds([bsds / "train", bsds / "val"])
    make_demo.synthesize(out / "train", n, bgs, seed, size)
    make_demo.synthesize(out / "test", test_n, bgs, seed + 10_000, size)
    return out


def _read_folder(folder: Path, input_size: int) -> tuple[Any, Any]:
    """Every image of an ImageFolder as a uint8 ``(N, 3, S, S)`` tensor, squashed like TorchClassifier."""
    import torch
    import torch.nn.functional as F

    xs, ys = [], []
    for label, cls in enumerate(("safe", "unsafe")):
        for f in sorted((folder / cls).glob("*.png")):
            t = torch.from_numpy(np.array(load_image(f))).permute(2, 0, 1)[None].float() / 255
            if t.shape[-2:] != (input_size, input_size):
                t = F.interpolate(t, size=(input_size, input_size), mode="bilinear",
                                  align_corners=False, antialias=True)
            xs.append((t[0].clamp(0, 1) * 255).round().to(torch.uint8))
            ys.append(label)
    return torch.stack(xs), torch.tensor(ys)


def _normalize(x: Any) -> Any:
    import torch

    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x.float() / 255 - mean) / std


def _accuracy(model: Any, x: Any, y: Any, batch: int = 128) -> float:
    import torch

    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            correct += int((model(_normalize(x[i : i + batch])).argmax(1) == y[i : i + batch]).sum())
    return correct / len(x)


# ---------------------------------------------------------------------------------------------
# implementations
# ---------------------------------------------------------------------------------------------
def run_plain(data: Path, arch: str, input_size: int, epochs: int, seed: int,
              train_files: set[str], opts: dict[str, Any] | None = None) -> dict[str, Any]:
    """The issue's loop, on the same training images as veil (its 80 % split).

    ``opts`` (``--plain-args``, for the diagnosis) changes one thing at a time towards
    ``veil train``: ``init_seed`` (the initialisation and batch-order seed, default ``seed``),
    ``schedule`` (``"onecycle"``: torch's OneCycleLR, the issue's; ``"veil"``: veil's
    :func:`~veil.training.classifier._one_cycle_lr` with a 30 % warm-up, and fixed betas),
    ``cycle_momentum`` and ``final_div_factor`` (OneCycleLR's).
    """
    opts = dict(opts or {})
    unknown = set(opts) - {"init_seed", "schedule", "cycle_momentum", "final_div_factor"}
    if unknown:
        raise SystemExit(f"unknown --plain-args {sorted(unknown)}")
    import torch
    import torchvision

    x_all, y_all = _read_folder(data / "train", input_size)
    files = [f"{c}/{p.name}" for c in ("safe", "unsafe") for p in sorted((data / "train" / c).glob("*.png"))]
    keep = torch.tensor([f in train_files for f in files])
    x, y = x_all[keep], y_all[keep]
    x_test, y_test = _read_folder(data / "test", input_size)
    init_seed = int(opts.get("init_seed", seed))
    torch.manual_seed(init_seed)
    model = torchvision.models.get_model(arch, num_classes=2)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    steps = math.ceil(len(x) / 64)
    sched: Any
    if opts.get("schedule", "onecycle") == "veil":
        from veil.training.classifier import _one_cycle_lr

        total, warm = steps * epochs, int(round(0.3 * steps * epochs))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _one_cycle_lr(s, total, warm, 1.0))
    else:
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=2e-3, total_steps=steps * epochs, cycle_momentum=bool(opts.get("cycle_momentum", True)),
            final_div_factor=float(opts.get("final_div_factor", 1e4)))
    gen = torch.Generator().manual_seed(init_seed)
    history = []
    for epoch in range(1, epochs + 1):
        t = time.monotonic()
        model.train()
        order = torch.randperm(len(x), generator=gen)
        run_loss = 0.0
        for i in range(0, len(x), 64):
            idx = order[i : i + 64]
            xb = _normalize(x[idx])
            flip = torch.rand(len(idx), generator=gen) < 0.5
            xb[flip] = xb[flip].flip(-1)
            loss = torch.nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            run_loss += float(loss.detach()) * len(idx)
        history.append({"epoch": epoch, "seconds": round(time.monotonic() - t, 1),
                        "train_loss": round(run_loss / len(x), 4)})
        print(f"  plain {arch} epoch {epoch}: loss {run_loss / len(x):.4f} "
              f"({history[-1]['seconds']:.0f} s)", flush=True)
    acc = _accuracy(model, x_test, y_test)
    # the same model after recomputing BatchNorm statistics over the training images (what veil's
    # bn_batches does): torchvision's MobileNets keep BN momentum 0.01, whose running averages
    # trail far behind after a few hundred steps. Two orders: "sorted" (the images as read, all
    # safe ones first, so most batches hold one class; the first version of this script) and
    # "shuffled" (mixed batches, as in training and in veil). Class-pure batches give smaller
    # per-batch variances, which on seed 0 scored 0.012-0.015 higher on each of four veil models.
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    recal: dict[str, float] = {}
    for how, order in (("sorted", torch.arange(len(x))),
                       ("shuffled", torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)))):
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        with torch.no_grad():
            for i in range(0, len(x), 64):
                model(_normalize(x[order[i : i + 64]]))
        recal[how] = _accuracy(model, x_test, y_test)
    return {"test_accuracy": acc, "test_accuracy_bn_recal": recal["sorted"],
            "test_accuracy_bn_recal_shuffled": recal["shuffled"],
            "n_train": len(x), "n_test": len(x_test),
            "seconds_per_epoch": round(float(np.mean([h["seconds"] for h in history])), 1),
            "history": history}


def _before_module(rev: str) -> Any:
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:src/veil/train.py"], check=True,
                         capture_output=True, text=True).stdout
    path = Path("/tmp") / f"veil_train_{rev}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(f"veil_train_{rev}", path)
    assert spec is not None and spec.loader is not None  # a file we just wrote
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def run_veil(data: Path, arch: str, input_size: int, epochs: int, seed: int, out: Path,
             before_rev: str | None, extra: dict[str, Any]) -> dict[str, Any]:
    if before_rev:
        train = _before_module(before_rev).train
    else:
        from veil.train import train
    # a "seed" in --veil-args (diagnosis: run-to-run spread) replaces the data seed for veil's split
    # and initialisation; the data and the test images stay those of the data seed
    card = train(data / "train", arch=arch, out=out, input_size=input_size, epochs=epochs,
                 resume=False, progress=False, **{"seed": seed, **extra})
    import torch

    from veil.classify.card import load_model_card

    module = load_model_card(out).module
    x_test, y_test = _read_folder(data / "test", input_size)
    tr = card["training"]
    hist = tr["history"]
    for h in hist:
        print(f"  {'veil-before' if before_rev else 'veil'} {arch} epoch {h['epoch']}: "
              f"loss {h['train_loss']:.4f} val acc {h['val_accuracy']:.3f}", flush=True)
    with torch.inference_mode():
        acc = _accuracy(module, x_test, y_test)
    return {"test_accuracy": acc, "n_train": card["split"]["sizes"]["train"], "n_test": len(x_test),
            # the one-time decoding into memory (load_time_s) is charged to the epochs too
            "seconds_per_epoch": round((tr["train_time_s"] + tr.get("load_time_s", 0.0))
                                       / max(tr["epochs_completed"], 1), 1),
            "best_epoch": tr["best_epoch"], "kept_epoch": tr.get("kept_epoch"), "warnings": tr.get("warnings", []),
            "history": [{k: h.get(k) for k in ("epoch", "train_loss", "val_accuracy", "seconds")}
                        for h in hist]}


# ---------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", choices=("small", "demo"), default="small")
    ap.add_argument("--n", type=int, default=1000, help="training-tree images (veil splits 80/10/10)")
    ap.add_argument("--test-n", type=int, default=400, help="test-tree images")
    ap.add_argument("--size", type=int, default=96, help="generated image side (demo: longer side)")
    ap.add_argument("--input-size", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2],
                    help="data and training seeds (seed 0 was used for tuning)")
    ap.add_argument("--archs", nargs="+", default=["resnet18", "mobilenet_v3_small"])
    ap.add_argument("--impls", nargs="+", default=["plain", "veil"],
                    choices=("plain", "veil", "veil-before"))
    ap.add_argument("--before-rev", default="6df7c81", help="git revision of the 'veil-before' train.py")
    ap.add_argument("--veil-args", default="{}", help="JSON of extra veil.train.train arguments (diagnosis)")
    ap.add_argument("--plain-args", default="{}",
                    help="JSON of plain-loop changes (diagnosis; see run_plain): init_seed, schedule, "
                         "cycle_momentum, final_div_factor")
    ap.add_argument("--tag", default="", help="label of this configuration in the results")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 is faster than 2 on a busy 2-core machine)")
    ap.add_argument("--bsds", type=Path, default=BSDS)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/veil-bench-train"))
    ap.add_argument("--results", type=Path, default=None, help="JSONL (default: WORKDIR/results.jsonl)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    results = args.results or args.workdir / "results.jsonl"
    results.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in results.read_text().splitlines()] if results.is_file() else []
    extra = json.loads(args.veil_args)
    plain_opts = json.loads(args.plain_args)
    print(f"# {platform.processor() or platform.machine()}, {args.threads} torch threads\n"
          f"# python bench/train.py {' '.join(sys.argv[1:])}", flush=True)
    for seed in args.seeds:
        data = args.workdir / f"{args.dataset}-n{args.n}-t{args.test_n}-s{args.size}-seed{seed}"
        maker = make_small_object_data if args.dataset == "small" else make_demo_data
        maker(data, args.n, args.test_n, args.size, seed, args.bsds)
        for arch in args.archs:
            for impl in args.impls:
                key = {"dataset": data.name, "arch": arch, "impl": impl, "input_size": args.input_size,
                       "epochs": args.epochs, "seed": seed, "tag": args.tag}
                if any(all(r.get(k) == v for k, v in key.items()) for r in done):
                    continue
                out = args.workdir / "cards" / f"{data.name}-{arch}-{impl}-{args.tag or 'default'}.json"
                out.parent.mkdir(parents=True, exist_ok=True)
                t = time.monotonic()
                if impl == "plain":
                    split_doc = None
                    # the same training images as veil: its seeded split of train/
                    from veil.train import load_items, split_items

                    _, items = load_items(data / "train")
                    split_doc = split_items(items, seed=seed)
                    res = run_plain(data, arch, args.input_size, args.epochs, seed,
                                    {it.path for it in split_doc["train"]}, plain_opts)
                else:
                    res = run_veil(data, arch, args.input_size, args.epochs, seed, out,
                                   args.before_rev if impl == "veil-before" else None, extra)
                row = {**key, **res, "wall_s": round(time.monotonic() - t, 1),
                       "veil_args": extra if impl != "plain" else {},
                       "plain_args": plain_opts if impl == "plain" else {},
                       "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
                done.append(row)
                with open(results, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(f"{data.name} {arch} {impl} {args.tag}: test accuracy {res['test_accuracy']:.3f}, "
                      f"{res['seconds_per_epoch']:.0f} s/epoch", flush=True)
    print_table(done)


def print_table(rows: list[dict[str, Any]]) -> None:
    print("\n| dataset | arch | impl | tag | seed | test acc | (plain: after BN recal, sorted / shuffled) "
          "| s/epoch | best / kept epoch |\n|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        recal = "/".join(f"{r[k]:.3f}" for k in ("test_accuracy_bn_recal", "test_accuracy_bn_recal_shuffled")
                         if k in r)
        kept = f"{r.get('best_epoch', '')} / {r['kept_epoch']}" if "kept_epoch" in r else r.get("best_epoch", "")
        print(f"| {r['dataset']} | {r['arch']} | {r['impl']} | {r.get('tag', '')} | {r['seed']} | "
              f"{r['test_accuracy']:.3f} | {recal} | {r['seconds_per_epoch']:.0f} | {kept} |")


if __name__ == "__main__":
    main()
