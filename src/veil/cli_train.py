"""``veil train``: a thin shell over :func:`veil.training.classifier.train`.

The lead's ``veil.cli`` calls :func:`register` on its Typer app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from veil.cli_common import fail
from veil.errors import VeilError


def _csv_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    out = [v.strip() for v in value.split(",") if v.strip()]
    return out or None


def format_lr_test(res: dict, rows: int = 16, width: int = 40) -> str:
    """The lr range test as text: a table of smoothed loss against lr with bars, and the suggestion.

    Examples
    --------
    >>> res = {"lrs": [1e-4, 1e-3, 1e-2], "smoothed": [0.7, 0.5, 0.9], "suggested_lr": 1e-4,
    ...        "min_loss_lr": 1e-3, "steepest_lr": 1e-3, "stopped_early": False}
    >>> print(format_lr_test(res).splitlines()[-1])
    suggested --lr 0.0001 (a tenth of 0.001, where the loss is lowest; it falls fastest at 0.001)
    """
    lrs, sm = res["lrs"], res["smoothed"]
    finite = [v for v in sm if v == v and v != float("inf")]
    lines = ["lr         smoothed loss"]
    if finite:
        lo, hi = min(finite), min(max(finite), 3 * min(finite))
        step = max(1, len(lrs) // rows)
        for i in list(range(0, len(lrs), step)) + ([len(lrs) - 1] if (len(lrs) - 1) % step else []):
            v = sm[i]
            frac = 1.0 if not v == v or v > hi else (v - lo) / max(hi - lo, 1e-12)
            lines.append(f"{lrs[i]:<10.2e} {v:<8.4f} {'#' * max(1, round(frac * width))}")
    if res.get("stopped_early"):
        lines.append(f"(stopped at lr {lrs[-1]:.2e}: the loss diverged)")
    if res.get("suggested_lr") is None:
        lines.append("no suggestion: the loss never became finite; check the data and the architecture")
    else:
        lines.append(f"suggested --lr {res['suggested_lr']:.2g} (a tenth of {res['min_loss_lr']:.2g}, where the "
                     f"loss is lowest" + (f"; it falls fastest at {res['steepest_lr']:.2g})"
                                          if res.get("steepest_lr") else ")"))
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``.

    Examples
    --------
    >>> import typer
    >>> app = typer.Typer()
    >>> register(app)
    """

    @app.command("train")
    def train_command(
        data: Annotated[Path, typer.Argument(help="ImageFolder directory (one sub-folder per class) "
                                             "or a CSV/JSONL manifest with image,label[,split] columns.")],
        arch: Annotated[str, typer.Option(help="torchvision or timm architecture name.")] = "resnet18",
        out: Annotated[Path, typer.Option(help="Model card to write (weights, split list and "
                                          "checkpoint go next to it).")] = Path("model.json"),
        unsafe_labels: Annotated[str | None, typer.Option(
            "--unsafe-labels", help="Comma-separated unsafe labels (default: every label not named "
            "like safe/neutral/normal).")] = None,
        pretrained: Annotated[Path | None, typer.Option(
            help="Local state_dict to fine-tune from (head replaced). Default: from scratch.")] = None,
        source: Annotated[str | None, typer.Option(help="'torchvision' or 'timm' (default: try both).")] = None,
        input_size: Annotated[int, typer.Option(help="Square network input side.")] = 224,
        epochs: Annotated[int, typer.Option(help="Maximum epochs (counted across resumed runs).")] = 50,
        batch_size: Annotated[int, typer.Option(help="Batch size.")] = 64,
        lr: Annotated[float | None, typer.Option(
            help="Peak learning rate of the one-cycle schedule (default 2e-3 from scratch, 3e-4 "
            "fine-tuning; --find-lr suggests one).")] = None,
        warmup: Annotated[float, typer.Option(
            help="Fraction of the steps spent warming the learning rate up.")] = 0.3,
        augment: Annotated[str, typer.Option(
            help="Training augmentation: flip (keeps every pixel), none, crop (random-resized crop "
            "and colour jitter; can cut small objects out), or hide (flip and hide-and-seek: random grid "
            "patches greyed out, label kept; regularises, needs more epochs).")] = "flip",
        cache_mb: Annotated[float, typer.Option(
            help="Hold the decoded training images in memory when they fit in this many MB (0: off).")] = 2048,
        seed: Annotated[int, typer.Option(help="Seed of the split, initialisation and augmentation.")] = 0,
        patience: Annotated[int, typer.Option(
            help="Early-stopping patience in epochs (0 disables early stopping).")] = 10,
        balance: Annotated[str, typer.Option(help="Class imbalance: loss, sampler or none.")] = "loss",
        resume: Annotated[bool, typer.Option("--resume/--no-resume",
                                             help="Continue from the checkpoint next to --out.")] = True,
        device: Annotated[str | None, typer.Option(help="Torch device (default: cuda if available).")] = None,
        num_workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 0,
        max_steps: Annotated[int | None, typer.Option(
            help="Stop after this many optimizer steps in this run.")] = None,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
        precision: Annotated[str, typer.Option(
            help="fp32, or bf16 (autocast; faster on CPUs with AMX/AVX512-BF16 and recent GPUs).")] = "fp32",
        find_lr: Annotated[bool, typer.Option(
            "--find-lr", help="Run a learning-rate range test instead of training: print loss against "
            "learning rate and suggest --lr.")] = False,
        find_lr_steps: Annotated[int, typer.Option(help="Steps of the --find-lr test.")] = 100,
        find_lr_plot: Annotated[Path | None, typer.Option(
            help="With --find-lr: also write a PNG plot of loss against learning rate.")] = None,
    ) -> None:
        """Train a classifier on labelled images and write a Veil model card.

        The defaults (batch 64, AdamW with a one-cycle schedule peaking at 2e-3, horizontal flips
        only) learn small unsafe objects in large photos from scratch; see docs/benchmarks.md.
        """
        import warnings

        from veil.training.classifier import TrainingWarning, train
        from veil.training.classifier import find_lr as run_find_lr

        try:
            if find_lr:
                res = run_find_lr(
                    data, arch=arch, pretrained=pretrained, source=source, input_size=input_size,
                    batch_size=batch_size, augment=augment, num_steps=find_lr_steps, seed=seed, device=device,
                    num_workers=num_workers, precision=precision, cache_mb=cache_mb, plot=find_lr_plot,
                    progress=progress,
                )
                typer.echo(format_lr_test(res))
                return
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TrainingWarning)  # echoed below, once, without a source line
                card = train(
                    data, arch=arch, out=out, unsafe_labels=_csv_list(unsafe_labels), pretrained=pretrained,
                    source=source, input_size=input_size, epochs=epochs, batch_size=batch_size, lr=lr,
                    warmup=warmup, augment=augment, cache_mb=cache_mb,
                    seed=seed, patience=patience or None, balance=balance, resume=resume, device=device,
                    num_workers=num_workers, progress=progress, max_steps=max_steps,
                    precision=precision,
                )
        except VeilError as exc:
            fail(exc)
        val, test = card["metrics"].get("val", {}), card["metrics"].get("test", {})

        def fmt(m: dict) -> str:
            if not m.get("n"):
                return "n/a"
            return (f"accuracy {m['accuracy']:.3f}, unsafe precision {m['precision']:.3f} "
                    f"recall {m['recall']:.3f} f1 {m['f1']:.3f} (n={m['n']})")

        typer.echo(f"wrote {out} ({card['arch']}, labels {card['labels']}, unsafe {card['unsafe_labels']})")
        typer.echo(f"val:  {fmt(val)}")
        typer.echo(f"test: {fmt(test)}")
        tr = card["training"]
        if tr.get("seconds_per_epoch"):
            typer.echo(f"speed: {tr['seconds_per_epoch']:.1f} s per epoch, "
                       f"{tr['images_per_second']:.1f} training images per second")
        for w in tr.get("warnings", []):
            typer.echo(f"warning: {w}", err=True)
