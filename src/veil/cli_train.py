"""``veil train``: a thin shell over :func:`veil.train.train`.

The lead's ``veil.cli`` calls :func:`register` on its Typer app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from veil.errors import VeilError


def _csv_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    out = [v.strip() for v in value.split(",") if v.strip()]
    return out or None


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
        batch_size: Annotated[int, typer.Option(help="Batch size.")] = 32,
        lr: Annotated[float | None, typer.Option(
            help="Learning rate (default 1e-3 from scratch, 3e-4 fine-tuning).")] = None,
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
    ) -> None:
        """Train a classifier on labelled images and write a Veil model card."""
        from veil.train import train

        try:
            card = train(
                data, arch=arch, out=out, unsafe_labels=_csv_list(unsafe_labels), pretrained=pretrained,
                source=source, input_size=input_size, epochs=epochs, batch_size=batch_size, lr=lr,
                seed=seed, patience=patience or None, balance=balance, resume=resume, device=device,
                num_workers=num_workers, progress=progress, max_steps=max_steps,
                precision=precision,
            )
        except VeilError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=2) from None
        val, test = card["metrics"].get("val", {}), card["metrics"].get("test", {})

        def fmt(m: dict) -> str:
            if not m.get("n"):
                return "n/a"
            return (f"accuracy {m['accuracy']:.3f}, unsafe precision {m['precision']:.3f} "
                    f"recall {m['recall']:.3f} f1 {m['f1']:.3f} (n={m['n']})")

        typer.echo(f"wrote {out} ({card['arch']}, labels {card['labels']}, unsafe {card['unsafe_labels']})")
        typer.echo(f"val:  {fmt(val)}")
        typer.echo(f"test: {fmt(test)}")
