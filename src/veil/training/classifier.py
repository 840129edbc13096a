"""Train (or fine-tune) an image classifier and write a model card that Veil loads.

:func:`train` takes an ImageFolder tree (one sub-folder per class) or a CSV /
JSONL manifest with ``image`` and ``label`` columns (and optionally ``split``),
makes a seeded stratified train/val/test split, trains any torchvision or timm
architecture, keeps the weights of the latest epoch whose validation accuracy is
within one standard error of the best (the best epoch, unless a later one is as
good up to the validation set's noise) and writes:

``model.json``
    the model card (arch, weights, labels, unsafe_labels, input_size, mean,
    std, split, metrics, training summary);
``model.pt``
    the best ``state_dict``;
``model.split.json``
    the exact file lists of the split, so :func:`evaluate` reproduces the
    recorded test metrics;
``model.ckpt``
    the last epoch's model, optimizer and counters, so a rerun resumes.

Preprocessing at train and test time is exactly that of
:class:`veil.classify.torch.TorchClassifier` (whole image squashed to
``input_size``², antialiased bilinear, normalized), so the recorded metrics are
the metrics of the loaded card.

The default recipe is meant to learn small unsafe objects in large photos from
scratch without tuning (issue #17, ``bench/train.py``): batch 64, AdamW with a
one-cycle schedule peaking at 2e-3, horizontal flips as the only augmentation
(no crop that could cut the object out of the frame), training images decoded
once and held in memory, BatchNorm statistics recomputed before each
validation. :func:`find_lr` is a learning-rate range test, and a finished run
warns (:class:`TrainingWarning`) when it ends near chance or still improving.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from veil.errors import InvalidImageError, InvalidParameterError, ModelLoadError
from veil.image import IMAGE_EXTENSIONS, iter_image_files, load_image
from veil.taxonomy import is_safe_label
from veil.training.cards import write_card
from veil.training.data import read_manifest
from veil.training.loop import check_checkpoint, fit, new_loop_state
from veil.training.progress import make_progress

__all__ = ["train", "evaluate", "find_lr", "load_items", "default_unsafe_labels", "split_items",
           "training_warnings", "TrainingWarning", "AUGMENTATIONS"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}


@dataclass(frozen=True)
class Item:
    """One labelled image: ``path`` as given (relative to the data root unless absolute)."""

    path: str
    label: str
    split: str | None = None


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def load_items(data: str | os.PathLike) -> tuple[Path, list[Item]]:
    """Read an ImageFolder tree or a CSV / JSONL manifest into ``(root, items)``.

    Paths in the items are relative to ``root`` (the folder itself, or the
    manifest's folder) unless the manifest gave absolute ones.

    Raises
    ------
    InvalidParameterError
        Missing data, unknown format, missing columns, fewer than two classes.

    Examples
    --------
    >>> load_items("no/such/folder")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    veil.errors.InvalidParameterError: data 'no/such/folder' does not exist
    """
    path = Path(data)
    if not path.exists():
        raise InvalidParameterError(
            f"data {str(path)!r} does not exist; pass an ImageFolder directory "
            "(one sub-folder per class) or a .csv/.jsonl manifest"
        )
    if path.is_dir():
        root, items = path, _folder_items(path)
    elif path.suffix.lower() in (".csv", ".jsonl", ".ndjson"):
        root, items = path.parent, _manifest_items(path)
    else:
        raise InvalidParameterError(
            f"data {str(path)!r} is neither a directory nor a .csv/.jsonl manifest"
        )
    if not items:
        raise InvalidParameterError(f"data {str(path)!r} contains no images")
    labels = sorted({it.label for it in items})
    if len(labels) < 2:
        raise InvalidParameterError(
            f"data {str(path)!r} has only one class {labels}; a classifier needs at least two "
            "(e.g. 'safe' and 'unsafe')"
        )
    return root, items


def _folder_items(root: Path) -> list[Item]:
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise InvalidParameterError(
            f"data folder {str(root)!r} has no class sub-folders; expected e.g. "
            f"{root.name}/safe/*.jpg and {root.name}/unsafe/*.jpg"
        )
    items: list[Item] = []
    for cls in classes:
        files = iter_image_files([cls])
        items.extend(Item(f.relative_to(root).as_posix(), cls.name) for f, _ in files)
    empty = [c.name for c in classes if not any(it.label == c.name for it in items)]
    if empty and len(empty) < len(classes):
        raise InvalidParameterError(
            f"class folders {empty} in {str(root)!r} contain no images "
            f"(extensions {', '.join(IMAGE_EXTENSIONS)})"
        )
    return items


def _manifest_items(path: Path) -> list[Item]:
    try:
        numbered = read_manifest(path)
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"cannot read manifest {str(path)!r}: {exc}") from exc
    rows = [r for _, r in numbered]
    columns = sorted({k for r in rows for k in r})
    missing = [c for c in ("image", "label") if c not in columns]
    if missing:
        raise InvalidParameterError(
            f"manifest {str(path)!r} lacks column(s) {missing}; found {columns}, "
            "expected 'image' and 'label' (and optionally 'split')"
        )
    items = []
    for n, r in enumerate(rows, 1):
        image, label = r.get("image"), r.get("label")
        if image in (None, "") or label in (None, ""):
            raise InvalidParameterError(f"manifest {str(path)!r} row {n} has an empty image or label")
        split = r.get("split")
        if split not in (None, ""):
            key = str(split).strip().lower()
            if key not in _SPLIT_ALIASES:
                raise InvalidParameterError(
                    f"manifest {str(path)!r} row {n}: split {split!r} is not one of train/val/test"
                )
            split = _SPLIT_ALIASES[key]
        else:
            split = None
        items.append(Item(str(image), str(label), split))
    if any(it.split for it in items) and not all(it.split for it in items):
        raise InvalidParameterError(
            f"manifest {str(path)!r} gives a split for some rows but not all; fill the 'split' "
            "column everywhere or drop it"
        )
    return items


def default_unsafe_labels(labels: Sequence[str]) -> list[str]:
    """Every label whose first word is not a safe name (:data:`veil.taxonomy.SAFE_LABELS`: safe, neutral, normal, …).

    Examples
    --------
    >>> default_unsafe_labels(["neutral", "nsfw", "violence", "safe_for_work"])
    ['nsfw', 'violence']
    """
    unsafe = [lbl for lbl in labels if not is_safe_label(lbl, prefix=True)]
    if not unsafe or len(unsafe) == len(labels):
        raise InvalidParameterError(
            f"cannot tell which of the labels {list(labels)} are unsafe (a safe class is one named "
            "like safe/neutral/normal); pass unsafe_labels explicitly"
        )
    return unsafe


def split_items(
    items: Sequence[Item], splits: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, list[Item]]:
    """Seeded stratified split; items that already carry a split keep it.

    Each class is shuffled with ``numpy.random.default_rng(seed)`` after sorting
    by path, so the split depends only on the file list and the seed. A class
    with at least three images gets at least one validation and one test image
    when those fractions are positive.

    Examples
    --------
    >>> items = [Item(f"{c}/{i}.png", c) for c in "ab" for i in range(10)]
    >>> {k: len(v) for k, v in split_items(items, seed=0).items()}
    {'train': 16, 'val': 2, 'test': 2}
    """
    if len(splits) != 3 or any(f < 0 for f in splits) or not math.isclose(sum(splits), 1.0, abs_tol=1e-6):
        raise InvalidParameterError(
            f"splits must be three non-negative fractions (train, val, test) summing to 1, got {tuple(splits)}"
        )
    if splits[0] <= 0:
        raise InvalidParameterError(f"the train fraction must be positive, got splits={tuple(splits)}")
    out: dict[str, list[Item]] = {s: [] for s in SPLITS}
    if items and all(it.split for it in items):
        for it in items:
            out[str(it.split)].append(it)
        return out
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[Item]] = {}
    for it in sorted(items, key=lambda i: (i.label, i.path)):
        by_label.setdefault(it.label, []).append(it)
    for label in sorted(by_label):
        group = by_label[label]
        order = rng.permutation(len(group))
        n = len(group)
        n_val = int(round(n * splits[1]))
        n_test = int(round(n * splits[2]))
        if n >= 3:
            n_val = max(n_val, 1) if splits[1] > 0 else 0
            n_test = max(n_test, 1) if splits[2] > 0 else 0
        while n_val + n_test >= n and (n_val or n_test):
            if n_val >= n_test and n_val:
                n_val -= 1
            else:
                n_test -= 1
        for rank, idx in enumerate(order):
            split = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
            out[split].append(Item(group[idx].path, label, split))
    for s in SPLITS:
        out[s].sort(key=lambda i: (i.label, i.path))
    return out


def _split_hash(split: dict[str, list[Item]]) -> str:
    h = hashlib.sha256()
    for s in SPLITS:
        for it in split[s]:
            h.update(f"{s}\t{it.label}\t{it.path}\n".encode())
    return h.hexdigest()


def _resolve(root: Path, item: Item) -> Path:
    p = Path(item.path)
    return p if p.is_absolute() else root / p


def _check_files(root: Path, items: Sequence[Item]) -> None:
    missing = [it.path for it in items if not _resolve(root, it).is_file()]
    if missing:
        raise InvalidParameterError(
            f"{len(missing)} image file(s) listed under {str(root)!r} do not exist, e.g. {missing[:3]}"
        )


# ---------------------------------------------------------------------------------------------
# torch pieces (imported lazily so that `import veil.train` stays cheap)
# ---------------------------------------------------------------------------------------------
#: ``augment`` choices of :func:`train` and what each does to a training image (after the squash).
AUGMENTATIONS = {
    "none": "squash to input_size",
    "flip": "squash to input_size, horizontal flip",
    "crop": "squash to input_size, RandomResizedCrop(scale 0.7-1, ratio 3/4-4/3), horizontal flip, "
            "ColorJitter(0.2, 0.2, 0.2, hue 0.02)",
    "hide": "squash to input_size, horizontal flip, hide-and-seek: the image cut into a grid of 4, 8 or 16 "
            "patches a side (or left whole, one time in four), each patch greyed out with probability 0.5",
}


class HideAndSeek:
    """Hide-and-seek augmentation (Singh & Lee, ICCV 2017): grey out random grid patches, keep the label.

    A classifier that can always see an object's most distinctive part may learn to key on that
    part alone; hiding random patches while keeping the label asks it to find evidence on the rest
    of the object too. Measured on Veil's bomb/blade benchmark (docs/extent-history.md): it regularises
    (MobileNetV3, 30 epochs: test accuracy 0.89 against 0.78 with flips only) but learns more slowly
    (ResNet-18 after 10 epochs: 0.81 against 0.91), and it did *not* make the counterfactual reach
    more of the objects there: the models still keyed on the bomb's spark and fuse.

    ``grids`` are the patch counts per side to draw from (0: no hiding); each patch is replaced by
    ``fill`` (per channel, on the 0–1 image before normalisation) with probability ``p``.
    Module level, so that DataLoader workers can pickle it.
    """

    def __init__(self, fill: Sequence[float], *, p: float = 0.5, grids: Sequence[int] = (0, 4, 8, 16)) -> None:
        if not 0.0 <= p <= 1.0:
            raise InvalidParameterError(f"p must lie in [0, 1], got {p!r}")
        if not grids or any(int(g) < 0 for g in grids):
            raise InvalidParameterError(f"grids must be patch counts >= 0, got {grids!r}")
        import torch

        self.fill = torch.tensor([float(f) for f in fill], dtype=torch.float32).view(-1, 1)
        self.p, self.grids = float(p), [int(g) for g in grids]

    def __call__(self, t: Any) -> Any:
        import torch

        g = self.grids[int(torch.randint(len(self.grids), ()))]
        if g == 0 or self.p == 0.0:
            return t
        _, h, w = t.shape
        hide = torch.rand(g, g) < self.p
        # each pixel's patch: rows and columns split into g near-equal bands
        m = hide[(torch.arange(h) * g) // h][:, (torch.arange(w) * g) // w]
        out = t.clone()
        out[:, m] = self.fill.to(t.dtype)
        return out


class _ImageDataset:
    """Map-style dataset (module level so that DataLoader workers can pickle it).

    Each image is squashed to ``input_size``² exactly as :class:`TorchClassifier`
    does, then augmented as ``augment`` says (:data:`AUGMENTATIONS`). The
    default, ``"flip"``, keeps every pixel: a crop can cut a small unsafe
    object out of the frame and leave an "unsafe" label on a safe picture.

    With ``cache`` the squashed images are decoded once and held in memory as
    ``uint8`` (``len × 3 × input_size²`` bytes); DataLoader workers share them.
    """

    def __init__(self, root: Path, items: Sequence[Item], label_index: dict[str, int], input_size: int,
                 mean: Sequence[float], std: Sequence[float], augment: str, *, cache: bool = False,
                 progress: Any = None) -> None:
        import torch
        from torchvision.transforms import v2

        self.root, self.items, self.label_index = root, list(items), label_index
        self.input_size = input_size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.aug: Any = None
        if augment == "crop":
            self.aug = v2.Compose([
                v2.RandomResizedCrop(input_size, scale=(0.7, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
                v2.RandomHorizontalFlip(),
                v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02),
            ])
        elif augment == "flip":
            self.aug = v2.RandomHorizontalFlip()
        elif augment == "hide":
            self.aug = v2.Compose([v2.RandomHorizontalFlip(), HideAndSeek(mean)])
        self.cached: Any = None
        if cache:
            data = torch.empty((len(self.items), 3, input_size, input_size), dtype=torch.uint8)
            task = progress.add_task("load images", total=len(self.items), info="") if progress else None
            for i in range(len(self.items)):
                data[i] = self._squashed(i).mul_(255.0).round_().to(torch.uint8)
                if task is not None:
                    progress.advance(task)
            if task is not None:
                progress.remove_task(task)
            self.cached = data

    def __len__(self) -> int:
        return len(self.items)

    def _squashed(self, i: int) -> Any:
        from veil.classify.torch import squash

        path = _resolve(self.root, self.items[i])
        try:
            arr = load_image(path)
        except InvalidImageError as exc:
            raise InvalidImageError(f"training image {str(path)!r}: {exc}") from exc
        return squash(arr, self.input_size).clamp_(0.0, 1.0)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        t = self.cached[i].float().div_(255.0) if self.cached is not None else self._squashed(i)
        if self.aug is not None:
            t = self.aug(t)
        return (t - self.mean) / self.std, self.label_index[self.items[i].label]


def _metrics(proba: np.ndarray, y: np.ndarray, unsafe_idx: Sequence[int], threshold: float,
             loss: float | None = None) -> dict[str, Any]:
    """Top-1 accuracy plus precision / recall / F1 of the unsafe decision (summed unsafe proba ≥ threshold)."""
    n = int(len(y))
    if n == 0:
        return {"n": 0}
    pred = proba.argmax(1)
    truth = np.isin(y, list(unsafe_idx))
    flagged = proba[:, list(unsafe_idx)].sum(1) >= threshold
    tp = int(np.sum(truth & flagged))
    fp = int(np.sum(~truth & flagged))
    fn = int(np.sum(truth & ~flagged))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    out: dict[str, Any] = {
        "n": n,
        "accuracy": round(float(np.mean(pred == y)), 6),
        "unsafe_accuracy": round(float(np.mean(truth == flagged)), 6),
        "precision": round(precision, 6),
        "recall": round(recall, 6),
        "f1": round(f1, 6),
        "threshold": threshold,
    }
    if loss is not None:
        out["loss"] = round(float(loss), 6)
    return out


class TrainingWarning(UserWarning):
    """A training run finished but its result is suspect (near chance, or still improving)."""


def _one_cycle_lr(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """One-cycle learning rate: linear from ``peak / 25`` to ``peak`` over ``warmup_steps``, then cosine to ``peak / 100``.

    Examples
    --------
    >>> [round(_one_cycle_lr(s, 10, 2, 1.0), 3) for s in (0, 1, 2, 10)]
    [0.04, 0.52, 1.0, 0.01]
    """
    if step < warmup_steps:
        return peak * (0.04 + 0.96 * step / warmup_steps)
    frac = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def _noise_margin(n_val: int) -> Callable[[float], float]:
    """One standard error of a validation accuracy ``p`` on ``n_val`` images, ``max(sqrt(p (1 - p) / n), 1 / n)``.

    :func:`train` keeps the latest epoch whose validation accuracy is within this margin of
    the best so far (:func:`veil.training.loop.fit`'s ``keep_within``): on 100 validation
    images a "best" epoch that wins by one or two images is noise, and the last epochs of the
    one-cycle schedule, at its lowest learning rates, are the settled model (on the
    ``bench/train.py`` small-object data, seed 0, the last epoch scored as well as or better
    than the best-validation one on every run where they differed).

    Examples
    --------
    >>> round(_noise_margin(100)(0.9), 3), round(_noise_margin(100)(1.0), 3)
    (0.03, 0.01)
    """
    n = max(int(n_val), 1)
    return lambda p: max(math.sqrt(max(p * (1 - p), 0.0) / n), 1 / n)


def training_warnings(history: Sequence[dict[str, Any]], *, chance: float, finished_by_epochs: bool = True,
                      window: int = 4, near: float = 0.05, rise: float = 0.05) -> list[str]:
    """Plain-language warnings about a finished run's validation curve.

    Two cases: the best validation accuracy is within ``near`` of ``chance``
    (the share of the most frequent class), or the run stopped at its epoch
    limit while validation accuracy rose by at least ``rise`` over the last
    ``window`` epochs, by at least ``rise / 2`` over the last two, and ended
    at its best.

    Examples
    --------
    >>> h = [{"val_accuracy": a} for a in (0.5, 0.55, 0.58, 0.62, 0.66, 0.69, 0.71)]
    >>> training_warnings(h, chance=0.5)[0][:61]
    'validation accuracy rose from 0.58 to 0.71 in the last 4 epoc'
    >>> training_warnings([{"val_accuracy": a} for a in (0.5, 0.52, 0.51)], chance=0.5)[0][:46]
    'validation accuracy stayed near chance (best 0'
    """
    accs = [float(h["val_accuracy"]) for h in history if "val_accuracy" in h]
    if not accs:
        return []
    out = []
    best = max(accs)
    if best < chance + near:
        out.append(
            f"validation accuracy stayed near chance (best {best:.2f}; always answering the most frequent "
            f"class scores {chance:.2f}): the model learnt little. Run `veil train --find-lr` to pick a "
            "learning rate, train for more epochs, keep every pixel in frame (--augment flip) and check "
            "the labels"
        )
        return out
    k = min(window, len(accs) - 1)
    if finished_by_epochs and k >= 2:
        first, last = accs[-1 - k], accs[-1]
        # still steep at the very end too (half the rise in the last two epochs), not a flattened curve
        if last - first >= rise and last - accs[-3] >= rise / 2 and last >= best - 1e-9 and last < 0.99:
            out.append(
                f"validation accuracy rose from {first:.2f} to {last:.2f} in the last {k} epochs: it is still "
                f"improving. Train longer (e.g. --epochs {2 * len(accs)} --no-resume), or raise the learning "
                "rate (`veil train --find-lr` suggests one)"
            )
    return out


def _predict(module: Any, root: Path, items: Sequence[Item], input_size: int, mean: Sequence[float],
             std: Sequence[float], *, batch_size: int, device: Any, progress: Any = None,
             desc: str = "eval") -> np.ndarray:
    """Softmax probabilities for ``items`` with TorchClassifier's preprocessing, ``(N, K)``."""
    import torch

    from veil.classify.torch import preprocess_images

    was_training = module.training
    module.eval()
    out = []
    task = progress.add_task(desc, total=len(items), info="") if progress is not None else None
    with torch.inference_mode():
        for i in range(0, len(items), batch_size):
            chunk = items[i : i + batch_size]
            imgs = [load_image(_resolve(root, it)) for it in chunk]
            x = preprocess_images(imgs, input_size, mean, std).to(device)
            out.append(torch.softmax(module(x).float(), 1).cpu().numpy())
            if task is not None:
                progress.advance(task, len(chunk))
    if task is not None:
        progress.remove_task(task)
    module.train(was_training)
    return np.concatenate(out, 0) if out else np.zeros((0, 0), np.float32)


def _recalibrate_bn(model: Any, loader: Any, n_batches: int, device: Any) -> bool:
    """Recompute BatchNorm running statistics with the current weights ("precise BN").

    During training the running averages trail the quickly changing weights;
    with a high learning rate the eval-mode network can then be far worse than
    the train-mode one (seen here: 61 % vs 97 % on the same training images).
    Averaging fresh statistics over a few training batches fixes that.
    Returns False when the model has no BatchNorm layer.
    """
    import torch

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
           and m.track_running_stats]
    if not bns or n_batches < 1:
        return False
    momenta = [m.momentum for m in bns]
    was_training = model.training
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    with torch.no_grad():
        for i, (x, _) in enumerate(loader):
            if i >= n_batches:
                break
            model(x.to(device))
    for m, mom in zip(bns, momenta, strict=True):
        m.momentum = mom
    model.train(was_training)
    return True


def _load_pretrained(model: Any, path: str | os.PathLike) -> dict[str, Any]:
    """Load a local ``state_dict`` into ``model``, skipping tensors whose shape differs (the head)."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"pretrained weights {str(p)!r} do not exist (a local state_dict .pt/.pth file)")
    if p.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as exc:  # pragma: no cover - optional
            raise ModelLoadError("reading .safetensors needs `pip install safetensors`") from exc
        state: Any = load_file(str(p))
    else:
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types (pickle, zip, runtime)
            raise ModelLoadError(f"cannot read pretrained weights {str(p)!r}: {exc}") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ModelLoadError(f"pretrained weights {str(p)!r} are not a state_dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    skipped = sorted(k for k in state if k not in usable)
    if len(usable) < 0.5 * len(own):
        raise ModelLoadError(
            f"pretrained weights {str(p)!r} match only {len(usable)} of {len(own)} tensors of the "
            "architecture; is it the right arch (and source)?"
        )
    model.load_state_dict(usable, strict=False)
    return {"path": str(p), "loaded": len(usable), "skipped": skipped[:20], "reinitialised":
            sorted(k for k in own if k not in usable)[:20]}


def _save_atomic(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _arch_source(arch: str, source: str | None) -> str:
    if source is not None:
        return source
    import torchvision

    return "torchvision" if arch in torchvision.models.list_models() else "timm"


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------
def _validate_options(*, input_size: int, epochs: int, batch_size: int, lr: float | None, patience: int | None,
                      max_steps: int | None, balance: str, threshold: float, precision: str, augment: str,
                      warmup: float, weight_decay: float, cache_mb: float) -> None:
    """Check :func:`train`'s options before any work, naming the option and the value received."""
    if int(input_size) < 8:
        raise InvalidParameterError(f"input_size must be at least 8, got {input_size}")
    if int(epochs) < 1:
        raise InvalidParameterError(f"epochs must be at least 1, got {epochs}")
    if int(batch_size) < 1:
        raise InvalidParameterError(f"batch_size must be at least 1, got {batch_size}")
    if lr is not None and not lr > 0:
        raise InvalidParameterError(f"lr must be positive, got {lr}")
    if patience is not None and patience < 1:
        raise InvalidParameterError(f"patience must be at least 1 (or None), got {patience}")
    if max_steps is not None and max_steps < 1:
        raise InvalidParameterError(f"max_steps must be at least 1 (or None), got {max_steps}")
    if balance not in ("loss", "sampler", "none"):
        raise InvalidParameterError(f"balance must be 'loss', 'sampler' or 'none', got {balance!r}")
    if not 0.0 < threshold < 1.0:
        raise InvalidParameterError(f"threshold must lie in (0, 1), got {threshold}")
    if precision not in ("fp32", "bf16"):
        raise InvalidParameterError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    if augment not in AUGMENTATIONS:
        raise InvalidParameterError(f"augment must be one of {sorted(AUGMENTATIONS)}, got {augment!r}")
    if not 0.0 <= warmup < 1.0:
        raise InvalidParameterError(f"warmup must be a fraction of the steps in [0, 1), got {warmup}")
    if not weight_decay >= 0:
        raise InvalidParameterError(f"weight_decay must be non-negative, got {weight_decay}")
    if not cache_mb >= 0:
        raise InvalidParameterError(f"cache_mb must be non-negative (0 disables the cache), got {cache_mb}")


def _prepare_data(data: str | os.PathLike, unsafe_labels: Sequence[str] | None, splits: Sequence[float],
                  seed: int) -> tuple[Path, list[Item], list[str], list[str], dict[str, list[Item]]]:
    """Items, sorted labels, unsafe labels and the split of ``data`` (every file checked)."""
    root, items = load_items(data)
    labels = sorted({it.label for it in items})
    if unsafe_labels is None:
        unsafe = default_unsafe_labels(labels)
    else:
        unsafe = [str(u) for u in unsafe_labels]
        bad = [u for u in unsafe if u not in labels]
        if bad or not unsafe:
            raise InvalidParameterError(
                f"unsafe_labels {unsafe} must be a non-empty subset of the data's labels {labels}"
            )
    split = split_items(items, splits, seed)
    if not split["train"]:
        raise InvalidParameterError("the training split is empty; add images or change splits")
    for s in SPLITS:
        _check_files(root, split[s])
    return root, items, labels, unsafe, split


def _evaluate_best(model: Any, weights_path: Path, root: Path, split: dict[str, list[Item]], input_size: int,
                   mean: Sequence[float], std: Sequence[float], *, batch_size: int, device: Any, progress: Any,
                   label_index: dict[str, int], unsafe_idx: Sequence[int], threshold: float) -> dict[str, Any]:
    """Load the best epoch's weights into ``model`` and measure it on the val and test splits."""
    import torch

    if not weights_path.is_file():
        raise ModelLoadError(f"no weights were saved to {str(weights_path)!r}; the run did not finish an epoch")
    model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    model.to(device)
    metrics: dict[str, Any] = {}
    for s in ("val", "test"):
        its = split[s]
        if not its:
            metrics[s] = {"n": 0}
            continue
        proba = _predict(model, root, its, input_size, mean, std, batch_size=batch_size, device=device,
                         progress=progress, desc=s)
        y = np.array([label_index[it.label] for it in its])
        metrics[s] = _metrics(proba, y, unsafe_idx, threshold)
    return metrics


def _restore_checkpoint(ckpt_path: Path, config: dict[str, Any], model: Any, optimizer: Any) -> dict[str, Any] | None:
    """Load ``<stem>.ckpt`` into ``model`` and ``optimizer`` and return its loop state (None: no checkpoint).

    The resume rule is :mod:`veil.training.loop`'s: the checkpoint must come from a run with the
    same ``config`` (:func:`~veil.training.loop.check_checkpoint`).
    """
    import torch

    if not ckpt_path.is_file():
        return None
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types on a truncated file
        raise ModelLoadError(
            f"cannot read checkpoint {str(ckpt_path)!r} ({exc}); delete it or pass resume=False"
        ) from exc
    check_checkpoint(ckpt.get("config"), config, str(ckpt_path))
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["torch_rng"])
    return {**new_loop_state(), **ckpt["state"]}


def _train_loader(dataset: Any, sample_weights: Sequence[float], *, balance: str, batch_size: int,
                  num_workers: int, generator: Any) -> Any:
    """The training DataLoader: shuffled (seeded by ``generator``), or class-weighted sampling.

    The last, incomplete batch is kept when it holds at least half a batch (:func:`_keeps_last_batch`).
    """
    import torch

    if balance == "sampler":
        sampler: Any = torch.utils.data.WeightedRandomSampler(
            list(sample_weights), num_samples=len(sample_weights), replacement=True, generator=generator)
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                                           num_workers=num_workers, drop_last=False)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator,
                                       num_workers=num_workers,
                                       drop_last=not _keeps_last_batch(len(dataset), batch_size))


def _keeps_last_batch(n: int, batch_size: int) -> bool:
    """Whether an epoch of ``n`` images ends with its incomplete batch (``n % batch_size`` images).

    Kept when it holds at least half a batch: dropping it costs every epoch up to that many
    images and the run its steps (800 images in batches of 64: 12 steps instead of 13; on the
    ``bench/train.py`` small-object data, seed 0, mobilenet_v3_small scored 0.890 with it kept
    against 0.865 without). A smaller remainder is dropped, as before: a batch of a few images
    gives BatchNorm useless statistics (one image fails outright) and a noisy full-lr step;
    which images it holds changes every epoch, so none is left out for good.

    Examples
    --------
    >>> _keeps_last_batch(800, 64), _keeps_last_batch(790, 64), _keeps_last_batch(768, 64)
    (True, False, True)
    >>> _keeps_last_batch(20, 64)  # a single, incomplete batch is the whole epoch
    True
    """
    rest = n % batch_size
    return rest == 0 or n < batch_size or 2 * rest >= batch_size


def _describe_sums(sums: Mapping[str, float], seconds: float) -> str:
    """The progress bar's info: running loss, accuracy and speed of the epoch."""
    n = max(sums.get("n", 0.0), 1.0)
    return (f"loss {sums.get('loss', 0.0) / n:.4f} acc {sums.get('correct', 0.0) / n:.3f} "
            f"| {sums.get('n', 0.0) / max(seconds, 1e-9):.1f} img/s")


def _epoch_line(h: Mapping[str, Any], state: Mapping[str, Any], epochs: int) -> str:
    """One line per epoch, which also survives in logs where bars do not render."""
    return (f"epoch {h['epoch']}/{epochs}: train loss {h['train_loss']:.4f} acc {h['train_accuracy']:.3f}"
            f" | val loss {h['val_loss']:.4f} acc {h['val_accuracy']:.3f}"
            f" | best {state['best_score']:.3f} @ {state['best_epoch']}, kept @ {state['kept_epoch']}"
            f" | {h['seconds']:.0f} s, {h['images_per_second']:.1f} img/s")


def train(
    data: str | os.PathLike,
    *,
    arch: str = "resnet18",
    out: str | os.PathLike = "model.json",
    unsafe_labels: Sequence[str] | None = None,
    pretrained: str | os.PathLike | None = None,
    source: str | None = None,
    input_size: int = 224,
    epochs: int = 50,
    batch_size: int = 64,
    lr: float | None = None,
    weight_decay: float = 0.01,
    warmup: float = 0.3,
    augment: str = "flip",
    cache_mb: float = 2048,
    seed: int = 0,
    splits: Sequence[float] = (0.8, 0.1, 0.1),
    patience: int | None = 10,
    balance: str = "loss",
    resume: bool = True,
    device: str | None = None,
    num_workers: int = 0,
    progress: bool = True,
    max_steps: int | None = None,
    bn_batches: int = 8,
    name: str | None = None,
    threshold: float = 0.5,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    description: str | None = None,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Train ``arch`` on ``data`` and write a model card; returns the card.

    Parameters
    ----------
    data : path
        An ImageFolder directory (``data/<label>/*.jpg``) or a ``.csv`` /
        ``.jsonl`` manifest with ``image`` (relative to the manifest) and
        ``label`` columns and an optional ``split`` column (train/val/test),
        which then replaces the seeded split.
    arch : str
        Any torchvision or timm classification architecture name.
    out : path
        The model card to write; weights go to ``<stem>.pt``, the split lists
        to ``<stem>.split.json`` and the resumable checkpoint to ``<stem>.ckpt``.
    unsafe_labels : sequence of str, optional
        Labels that make an image unsafe; default every label not named like
        safe / neutral / normal.
    pretrained : path, optional
        A local ``state_dict`` to fine-tune from (the head is replaced when its
        shape differs). From scratch when None. Nothing is downloaded.
    source : {"torchvision", "timm"}, optional
        Where ``arch`` comes from (default: torchvision first, then timm).
    input_size : int
        Side of the square network input.
    epochs : int
        Maximum number of epochs (counted across resumed runs). Raising it when
        resuming a finished run trains on, with the learning-rate schedule
        stretched to the new length.
    batch_size : int
        Training and evaluation batch size.
    lr : float, optional
        Peak AdamW learning rate; default 2e-3 from scratch, 3e-4 when
        fine-tuning (``veil train --find-lr`` suggests one for your data). The
        schedule is one cycle over ``epochs``: a linear warm-up from ``lr / 25``
        over the first ``warmup`` of the steps, then cosine annealing to
        ``lr / 100``.
    weight_decay : float
        AdamW weight decay.
    warmup : float
        Fraction of all steps spent warming up, in ``[0, 1)``. Early stopping
        does not count epochs that end inside the warm-up.
    augment : {"flip", "none", "crop", "hide"}
        Training augmentation (:data:`AUGMENTATIONS`): horizontal flips only
        (the default keeps every pixel, so a small unsafe object is never
        cropped away), nothing, the random-resized crop and colour jitter
        used before (which can cut a small object out of the frame), or flips
        and hide-and-seek (:class:`HideAndSeek`: random grid patches greyed
        out, the label kept; a regulariser that needs more epochs).
    cache_mb : float
        Hold the squashed training images in memory (decoded once) when they
        take at most this many megabytes (0: decode every image every epoch).
    seed : int
        Seeds the split, the initialisation, the augmentation and the batch order.
    splits : (float, float, float)
        Train / val / test fractions of the stratified split.
    patience : int or None
        Stop after this many epochs without a better validation accuracy (None: never).
        The weights kept are those of the latest epoch whose validation accuracy is within
        one standard error (:func:`_noise_margin`) of the best so far: the best epoch, or a
        later one that is as good up to the noise of the validation set (``kept_epoch`` in
        the card).
    balance : {"loss", "sampler", "none"}
        Class-imbalance handling: class-weighted cross-entropy, a weighted
        sampler, or nothing.
    resume : bool
        Continue from ``<stem>.ckpt`` when it exists (it must match this run's
        arch, labels, input size, split, batch size, lr, …; see the resume rule of
        :mod:`veil.training.loop`). A run that reached its epochs goes on when
        ``epochs`` is raised; one stopped early stays stopped.
    device : str, optional
        Torch device; default CUDA when available, else CPU.
    num_workers : int
        DataLoader workers.
    progress : bool
        Show rich progress bars with the running loss and accuracy.
    max_steps : int, optional
        Stop after this many optimizer steps in this call (the current epoch
        is then cut short, validated and checkpointed).
    bn_batches : int
        Before each validation, BatchNorm running statistics are recomputed
        over this many training batches with the current weights (0: keep the
        running averages).
    name, threshold, mean, std, description
        Recorded in the card (``mean``/``std`` are also the normalization used).
    precision : {"fp32", "bf16"}
        Arithmetic of the training forward and backward passes. ``bf16`` runs
        them under ``torch.autocast`` with bfloat16 (weights, optimizer state,
        validation and the saved ``state_dict`` stay float32); on CPUs with
        AMX or AVX512-BF16 and on recent GPUs it is faster (resnet50 on a
        2-core AMX CPU: 1.9x per step, ``bench/train_speed.py``).

    Returns
    -------
    dict
        The model card as written, with ``metrics`` ``{"val": …, "test": …}``
        and a ``training`` section with the history (per epoch: losses,
        accuracies, learning rate, ``seconds`` and ``images_per_second``),
        ``seconds_per_epoch``, ``images_per_second``, ``best_epoch``, ``kept_epoch``
        (whose weights were saved) and ``warnings``.

    Warns
    -----
    TrainingWarning
        When the run ends near chance, or while validation accuracy is still
        rising steeply (see :func:`training_warnings`).

    Raises
    ------
    InvalidParameterError
        Bad data, labels or options.
    ModelLoadError
        Unknown architecture or unreadable pretrained weights.

    Examples
    --------
    >>> card = train("data/", arch="resnet18", out="model.json", epochs=20)  # doctest: +SKIP
    >>> card["metrics"]["test"]["accuracy"]  # doctest: +SKIP
    0.97
    """
    import torch

    from veil.classify.arch import build_model
    from veil.classify.card import validate_model_card

    t_start = time.monotonic()
    _validate_options(input_size=input_size, epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                      max_steps=max_steps, balance=balance, threshold=threshold, precision=precision,
                      augment=augment, warmup=warmup, weight_decay=weight_decay, cache_mb=cache_mb)
    out_path = Path(out)
    if out_path.suffix.lower() != ".json":
        raise InvalidParameterError(f"out must be a .json model card path, got {str(out_path)!r}")
    input_size, epochs, batch_size = int(input_size), int(epochs), int(batch_size)

    # ---- data, labels, split ----
    root, items, labels, unsafe, split = _prepare_data(data, unsafe_labels, splits, seed)
    split_hash = _split_hash(split)
    label_index = {lbl: i for i, lbl in enumerate(labels)}
    unsafe_idx = [label_index[u] for u in unsafe]

    stem = out_path.with_suffix("")
    weights_path = stem.with_suffix(".pt")
    split_path = stem.with_name(stem.name + ".split.json")
    ckpt_path = stem.with_suffix(".ckpt")
    _write_split_file(split_path, split, root, labels, seed, splits, split_hash)

    # ---- model ----
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(seed)
    model = build_model(arch, len(labels), source=source)
    pretrained_info = _load_pretrained(model, pretrained) if pretrained is not None else None
    # channels-last is the layout oneDNN and cuDNN convolutions run fastest in (1.4-1.5x per
    # step on resnet50, bench/train_speed.py); it only changes how 4-D tensors are stored.
    model.to(dev, memory_format=torch.channels_last)
    base_lr = float(lr if lr is not None else (3e-4 if pretrained is not None else 2e-3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=base_lr, weight_decay=weight_decay)
    counts = Counter(it.label for it in split["train"])
    class_w = [len(split["train"]) / (len(labels) * max(counts.get(lbl, 0), 1)) for lbl in labels]

    # what a resumed run must share with the checkpoint (steps, lr schedule and init depend on it)
    config = {"arch": arch, "source": source, "labels": labels, "input_size": input_size,
              "split_sha256": split_hash, "mean": list(mean), "std": list(std), "batch_size": batch_size,
              "lr": base_lr, "weight_decay": weight_decay, "balance": balance, "seed": seed,
              "warmup": warmup, "augment": augment,
              "last_batch": "kept from half a batch",  # steps per epoch depend on it (before: always dropped)
              "pretrained": None if pretrained is None else str(pretrained)}
    state = _restore_checkpoint(ckpt_path, config, model, optimizer) if resume else None
    if state is None and ckpt_path.exists():
        ckpt_path.unlink()
    resumed_from = None if state is None else state["epoch"]
    state = new_loop_state() if state is None else state

    cache = len(split["train"]) * 3 * input_size**2 <= cache_mb * 1e6
    t_load = time.monotonic()
    with make_progress(progress and cache) as load_prog:
        train_ds: Any = _ImageDataset(root, split["train"], label_index, input_size, mean, std, augment,
                                      cache=cache, progress=load_prog)
    load_s = time.monotonic() - t_load
    # reseeded every epoch, so a resumed run sees the same batches as an uninterrupted one
    train_gen = torch.Generator().manual_seed(seed)
    loader = _train_loader(train_ds, [class_w[label_index[it.label]] for it in split["train"]],
                           balance=balance, batch_size=batch_size, num_workers=num_workers, generator=train_gen)
    total_steps = len(loader) * epochs
    warmup_steps = int(round(warmup * total_steps))

    with make_progress(progress) as prog:
        run = _Epochs(model, optimizer, loader, train_gen, state, seed=seed, device=dev, precision=precision,
                      class_weights=class_w if balance == "loss" else None,
                      lr_at=lambda step: _one_cycle_lr(step, total_steps, warmup_steps, base_lr),
                      bn_batches=bn_batches, root=root, val_items=split["val"], input_size=input_size, mean=mean,
                      std=std, batch_size=batch_size, label_index=label_index, progress=prog,
                      weights_path=weights_path, ckpt_path=ckpt_path, config=config)
        state, stop_reason = fit(
            run.step, run.batches, epochs=epochs, steps_per_epoch=len(loader), state=state,
            evaluate=run.evaluate, monitor="val accuracy", on_improve=run.save_best,
            keep_within=_noise_margin(len(split["val"])) if split["val"] else None, patience=patience,
            patience_after_step=warmup_steps, save=run.save_checkpoint, max_steps=max_steps, progress=prog,
            name=f"train {arch}", describe=_describe_sums, report=lambda h, st: _epoch_line(h, st, epochs),
        )
        # ---- final metrics with the kept weights ----
        metrics = _evaluate_best(model, weights_path, root, split, input_size, mean, std, batch_size=batch_size,
                                 device=dev, progress=prog, label_index=label_index, unsafe_idx=unsafe_idx,
                                 threshold=threshold)

    warns = _run_warnings(state, stop_reason, split, labels)
    card: dict[str, Any] = {
        "name": name or out_path.stem, "arch": arch, "source": _arch_source(arch, source),
        "weights": weights_path.name, "labels": labels, "unsafe_labels": unsafe, "input_size": input_size,
        "mean": [float(v) for v in mean], "std": [float(v) for v in std], "threshold": threshold,
    }
    if description:
        card["description"] = description
    card["split"] = {"seed": seed, "fractions": [float(f) for f in splits], "file": split_path.name,
                     "sha256": split_hash, "given": all(it.split for it in items),
                     "sizes": {s: len(split[s]) for s in SPLITS}}
    training = {
        "data": str(data), "epochs": epochs, "epochs_completed": state["epoch"], "best_epoch": state["best_epoch"],
        "best_val_accuracy": round(float(state["best_score"]), 6), "kept_epoch": state["kept_epoch"], "steps": state["step"],
        "finished": bool(state["finished"]), "stop_reason": stop_reason, "resumed_from_epoch": resumed_from,
        "batch_size": batch_size, "lr": base_lr, "weight_decay": weight_decay,
        "optimizer": f"AdamW, one cycle: linear warm-up from lr/25 over {warmup:.0%} of the steps, "
                     "then cosine to lr/100",
        "warmup": warmup, "precision": precision, "balance": balance, "bn_recalibration_batches": bn_batches,
        "last_batch_kept": _keeps_last_batch(len(split["train"]), batch_size),
        "class_counts": {lbl: int(counts.get(lbl, 0)) for lbl in labels}, "augment": augment,
        "augmentation": AUGMENTATIONS[augment], "cached_in_memory": cache, "pretrained": pretrained_info,
        "parameters": int(sum(p.numel() for p in model.parameters())), "device": str(dev),
        **_timings(state["history"], state["elapsed_s"], load_s, t_start), "warnings": warns,
        "history": state["history"],
    }
    return write_card(out_path, card, metrics=metrics, training=training, validate=validate_model_card)


def _write_split_file(path: Path, split: dict[str, list[Item]], root: Path, labels: Sequence[str], seed: int,
                      splits: Sequence[float], split_hash: str) -> None:
    """``<stem>.split.json``: the exact file lists of the split, so :func:`evaluate` reproduces the metrics."""
    doc = {"seed": seed, "fractions": list(splits), "root": str(Path(root).resolve()), "labels": list(labels),
           "sha256": split_hash, **{s: [[it.path, it.label] for it in split[s]] for s in SPLITS}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def _run_warnings(state: Mapping[str, Any], stop_reason: str | None, split: dict[str, list[Item]],
                  labels: Sequence[str]) -> list[str]:
    """:func:`training_warnings` of a finished run, also issued as :class:`TrainingWarning`."""
    val_labels = [it.label for it in split["val"]]
    chance = max(Counter(val_labels).values()) / len(val_labels) if val_labels else 1.0 / len(labels)
    # only a finished run is judged: one cut short by max_steps is not over yet
    warns = (training_warnings(state["history"], chance=chance, finished_by_epochs=stop_reason == "reached epochs")
             if state["finished"] and not str(stop_reason).startswith("max_steps") else [])
    for w in warns:
        warnings.warn(w, TrainingWarning, stacklevel=3)
    return warns


def _timings(history: Sequence[Mapping[str, Any]], elapsed_s: float, load_s: float, t_start: float) -> dict[str, Any]:
    """The card's timing fields: training time over all calls, image loading, per epoch, throughput."""
    ep_s = [h["seconds"] for h in history if "seconds" in h and not h.get("cut_short")]
    ips = [h["images_per_second"] for h in history if "images_per_second" in h]
    return {
        "train_time_s": round(float(elapsed_s), 1),
        "load_time_s": round(load_s, 1),
        "seconds_per_epoch": round(float(np.mean(ep_s)), 2) if ep_s else None,
        "images_per_second": round(float(np.mean(ips)), 2) if ips else None,
        "wall_time_this_call_s": round(time.monotonic() - t_start, 1),
    }


class _Epochs:
    """What :func:`veil.training.loop.fit` calls for ``veil train``: batches, the step, the evaluation, the saves."""

    def __init__(self, model: Any, optimizer: Any, loader: Any, generator: Any, state: dict[str, Any], *,
                 seed: int, device: Any, precision: str, class_weights: Sequence[float] | None,
                 lr_at: Any, bn_batches: int, root: Path, val_items: Sequence[Item], input_size: int,
                 mean: Sequence[float], std: Sequence[float], batch_size: int, label_index: dict[str, int],
                 progress: Any, weights_path: Path, ckpt_path: Path, config: dict[str, Any]) -> None:
        import torch

        self.model, self.optimizer, self.loader, self.generator, self.state = model, optimizer, loader, generator, state
        self.seed, self.device, self.precision, self.lr_at = seed, device, precision, lr_at
        weight = None if class_weights is None else torch.tensor(list(class_weights), dtype=torch.float32).to(device)
        self.loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
        self.bn_batches, self.root, self.val_items = bn_batches, root, list(val_items)
        self.input_size, self.mean, self.std, self.batch_size = input_size, mean, std, batch_size
        self.label_index, self.progress = label_index, progress
        self.weights_path, self.ckpt_path, self.config = weights_path, ckpt_path, config

    def batches(self, epoch: int, start: int) -> Any:
        self.generator.manual_seed(self.seed * 1_000_003 + epoch)
        self.model.train()
        return self.loader

    def step(self, batch: Any, st: dict[str, Any]) -> dict[str, float]:
        import torch

        x, y = batch[0].to(self.device, memory_format=torch.channels_last), batch[1].to(self.device)
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr_at(st["step"])
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            logits = self.model(x)
            loss = self.loss_fn(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": float(loss.detach()) * len(y), "correct": float((logits.detach().argmax(1) == y).sum()),
                "n": float(len(y))}

    def evaluate(self, epoch: int, sums: Mapping[str, float], train_s: float) -> dict[str, Any]:
        """BatchNorm statistics recomputed, then the validation loss and accuracy (the score)."""
        self.generator.manual_seed(self.seed * 1_000_003 + epoch + 500_000)
        _recalibrate_bn(self.model, self.loader, self.bn_batches, self.device)
        n = max(sums.get("n", 0.0), 1.0)
        train_loss, train_acc = sums.get("loss", 0.0) / n, sums.get("correct", 0.0) / n
        val_loss, val_acc = train_loss, train_acc  # no validation data: the last epoch is the best
        if self.val_items:
            proba = _predict(self.model, self.root, self.val_items, self.input_size, self.mean, self.std,
                             batch_size=self.batch_size, device=self.device, progress=self.progress, desc="validate")
            yv = np.array([self.label_index[it.label] for it in self.val_items])
            val_loss = float(-np.mean(np.log(np.clip(proba[np.arange(len(yv)), yv], 1e-12, 1))))
            val_acc = float(np.mean(proba.argmax(1) == yv))
        return {"train_loss": round(train_loss, 6), "train_accuracy": round(train_acc, 6),
                "val_loss": round(val_loss, 6), "val_accuracy": round(val_acc, 6),
                "lr": round(self.lr_at(max(self.state["step"] - 1, 0)), 8), "train_seconds": round(train_s, 2),
                "images_per_second": round(sums.get("n", 0.0) / max(train_s, 1e-9), 2),
                "score": val_acc, "tiebreak": val_loss}

    def save_best(self, st: dict[str, Any]) -> None:
        # contiguous: training keeps 4-D weights channels-last; other tools (safetensors) refuse those
        _save_atomic({k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()},
                     self.weights_path)

    def save_checkpoint(self, st: dict[str, Any]) -> None:
        import torch

        _save_atomic({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "state": st,
                      "config": self.config, "torch_rng": torch.get_rng_state()}, self.ckpt_path)


# ---------------------------------------------------------------------------------------------
# learning-rate range test
# ---------------------------------------------------------------------------------------------
def find_lr(
    data: str | os.PathLike,
    *,
    arch: str = "resnet18",
    pretrained: str | os.PathLike | None = None,
    source: str | None = None,
    input_size: int = 224,
    batch_size: int = 64,
    weight_decay: float = 0.01,
    augment: str = "flip",
    start_lr: float = 1e-6,
    end_lr: float = 1.0,
    num_steps: int = 100,
    seed: int = 0,
    splits: Sequence[float] = (0.8, 0.1, 0.1),
    device: str | None = None,
    num_workers: int = 0,
    precision: str = "fp32",
    cache_mb: float = 2048,
    diverge: float = 4.0,
    plot: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Learning-rate range test: train with an exponentially rising lr and watch the loss.

    Starting from a fresh model (or ``pretrained``), each of ``num_steps``
    AdamW steps on the training split (the same seeded split and
    preprocessing as :func:`train`) uses a learning rate ``start_lr ·
    (end_lr / start_lr)^(i / (num_steps - 1))``. The loss is smoothed with an
    exponential moving average; the test stops early once the smoothed loss
    exceeds ``diverge`` times its minimum. Nothing is saved except the plot.

    The suggestion is a tenth of the learning rate at the smoothed loss's
    minimum (L. Smith's rule: the loss still falls fast there and is far from
    diverging); ``steepest_lr``, where the smoothed loss falls fastest per
    decade, is reported too. Use it as the peak of :func:`train`'s one-cycle
    schedule (``lr=``).

    Parameters
    ----------
    data, arch, pretrained, source, input_size, batch_size, weight_decay, augment, seed, splits,
    device, num_workers, precision, cache_mb
        As in :func:`train`.
    start_lr, end_lr : float
        Range of the test, ``0 < start_lr < end_lr``.
    num_steps : int
        Optimizer steps (batches); the training split is cycled through when shorter.
    diverge : float
        Stop when the smoothed loss exceeds this multiple of its minimum.
    plot : path, optional
        Write a PNG of loss against learning rate (log axis) with the suggestion marked.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``lrs``, ``losses``, ``smoothed`` (one per step taken), ``suggested_lr``,
        ``min_loss_lr``, ``steepest_lr``, ``stopped_early`` and ``plot`` (the
        path written, or None).

    Examples
    --------
    >>> res = find_lr("data/", arch="resnet18", input_size=160)  # doctest: +SKIP
    >>> res["suggested_lr"]  # doctest: +SKIP
    0.002
    """
    import torch

    from veil.classify.arch import build_model

    if not 0 < start_lr < end_lr:
        raise InvalidParameterError(f"need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    if int(num_steps) < 5:
        raise InvalidParameterError(f"num_steps must be at least 5, got {num_steps}")
    if not diverge > 1:
        raise InvalidParameterError(f"diverge must be above 1, got {diverge}")
    if augment not in AUGMENTATIONS:
        raise InvalidParameterError(f"augment must be one of {sorted(AUGMENTATIONS)}, got {augment!r}")
    if precision not in ("fp32", "bf16"):
        raise InvalidParameterError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    if int(input_size) < 8 or int(batch_size) < 1:
        raise InvalidParameterError(
            f"input_size must be at least 8 and batch_size at least 1, got {input_size} and {batch_size}")
    input_size, batch_size, num_steps = int(input_size), int(batch_size), int(num_steps)
    root, items = load_items(data)
    labels = sorted({it.label for it in items})
    label_index = {lbl: i for i, lbl in enumerate(labels)}
    split = split_items(items, splits, seed)
    if not split["train"]:
        raise InvalidParameterError("the training split is empty; add images or change splits")
    _check_files(root, split["train"])
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(seed)
    model = build_model(arch, len(labels), source=source)
    if pretrained is not None:
        _load_pretrained(model, pretrained)
    model.to(dev, memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=start_lr, weight_decay=weight_decay)
    cache = len(split["train"]) * 3 * input_size**2 <= cache_mb * 1e6
    loss_fn = torch.nn.CrossEntropyLoss()
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best, stopped = 0.0, math.inf, False
    with make_progress(progress) as prog:
        ds: Any = _ImageDataset(root, split["train"], label_index, input_size, IMAGENET_MEAN, IMAGENET_STD,
                                augment, cache=cache, progress=prog)
        loader: Any = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                                             generator=torch.Generator().manual_seed(seed),
                                             drop_last=len(ds) > batch_size)
        task = prog.add_task("lr range test", total=num_steps, info="")
        batches = iter(loader)
        for i in range(num_steps):
            try:
                x, y = next(batches)
            except StopIteration:
                batches = iter(loader)
                x, y = next(batches)
            lr_i = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))
            for g in optimizer.param_groups:
                g["lr"] = lr_i
            x, y = x.to(dev, memory_format=torch.channels_last), y.to(dev)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = loss_fn(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            lrs.append(lr_i)
            losses.append(value)
            avg = 0.9 * avg + 0.1 * value if math.isfinite(value) else math.inf
            smooth_i = avg / (1 - 0.9 ** (i + 1))
            smoothed.append(smooth_i)
            best = min(best, smooth_i)
            prog.update(task, advance=1, info=f"lr {lr_i:.2e} loss {smooth_i:.4f}")
            if not math.isfinite(smooth_i) or (i >= 5 and smooth_i > diverge * best):
                stopped = True
                break
    result = _suggest_lr(lrs, smoothed)
    result.update(lrs=lrs, losses=losses, smoothed=smoothed, stopped_early=stopped, plot=None)
    if plot is not None:
        result["plot"] = str(_plot_lr(lrs, smoothed, losses, result["suggested_lr"], Path(plot)))
    return result


def _suggest_lr(lrs: Sequence[float], smoothed: Sequence[float]) -> dict[str, Any]:
    """A tenth of the lr at the smoothed loss's minimum, and the lr where it falls fastest per decade."""
    finite = [i for i, v in enumerate(smoothed) if math.isfinite(v)]
    if not finite:
        return {"suggested_lr": None, "min_loss_lr": None, "steepest_lr": None}
    i_min = min(finite, key=lambda i: smoothed[i])
    steepest = None
    if i_min >= 2:
        logs = np.log10(np.asarray(lrs[: i_min + 1]))
        grads = np.gradient(np.asarray(smoothed[: i_min + 1]), logs)
        steepest = float(lrs[int(np.argmin(grads))])
    return {"suggested_lr": float(f"{lrs[i_min] / 10:.2g}"), "min_loss_lr": float(lrs[i_min]),
            "steepest_lr": steepest}


def _plot_lr(lrs: Sequence[float], smoothed: Sequence[float], losses: Sequence[float], suggested: float | None,
             path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses, color="0.75", lw=0.8, label="loss")
    ax.plot(lrs, smoothed, color="C0", lw=1.8, label="smoothed loss")
    if suggested is not None:
        ax.axvline(suggested, color="C3", ls="--", label=f"suggested lr {suggested:.2g}")
    finite = [v for v in smoothed if math.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) * 0.9, min(max(finite), 3 * min(finite)) * 1.1)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("veil train --find-lr")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------
def evaluate(
    card_path: str | os.PathLike,
    data: str | os.PathLike,
    split: str = "test",
    *,
    batch_size: int = 32,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Metrics of a trained card on one split recorded at training time.

    The split's file list is read from the ``<stem>.split.json`` written by
    :func:`train`, and resolved against ``data`` (the same ImageFolder
    directory or manifest, possibly moved), so the result reproduces the
    card's ``metrics[split]``.

    Examples
    --------
    >>> evaluate("model.json", "data/")["accuracy"]  # doctest: +SKIP
    0.97
    """
    import torch

    from veil.classify.card import load_model_card, read_model_card

    split_key = _SPLIT_ALIASES.get(str(split).lower())
    if split_key is None:
        raise InvalidParameterError(f"split must be one of train/val/test, got {split!r}")
    card_file = Path(card_path)
    card = read_model_card(card_file)
    info = card.get("split")
    if not isinstance(info, dict) or "file" not in info:
        raise ModelLoadError(f"model card {str(card_file)!r} records no split file; was it made by veil.train?")
    split_file = card_file.parent / str(info["file"])
    try:
        doc = json.loads(split_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read split file {str(split_file)!r}: {exc}") from exc
    data_path = Path(data)
    if not data_path.exists():
        raise InvalidParameterError(f"data {str(data_path)!r} does not exist")
    root = data_path if data_path.is_dir() else data_path.parent
    items = [Item(p, lbl, split_key) for p, lbl in doc[split_key]]
    _check_files(root, items)
    labels = [str(x) for x in card["labels"]]
    label_index = {lbl: i for i, lbl in enumerate(labels)}
    unknown = sorted({it.label for it in items} - set(labels))
    if unknown:
        raise InvalidParameterError(f"split labels {unknown} are not among the card's labels {labels}")
    module = load_model_card(card_file).module
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    module.to(dev)
    mean = card.get("mean", IMAGENET_MEAN)
    std = card.get("std", IMAGENET_STD)
    with make_progress(progress) as prog:
        proba = _predict(module, root, items, int(card["input_size"]), mean, std, batch_size=batch_size,
                         device=dev, progress=prog, desc=split_key)
    y = np.array([label_index[it.label] for it in items])
    unsafe_idx = [label_index[u] for u in card["unsafe_labels"]]
    result = _metrics(proba, y, unsafe_idx, float(card.get("threshold", 0.5)))
    result["split"] = split_key
    return result

