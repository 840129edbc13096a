"""``veil train-moderator``: a thin shell over :func:`veil.moderator.train.train_moderator`.

Registered on the main app by :func:`register` (``veil.cli`` discovers it).
Nothing heavy is imported until the command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from veil.cli_common import fail
from veil.errors import VeilError

__all__ = ["register", "train_moderator_command"]


def train_moderator_command(
    data: Annotated[
        Path,
        typer.Argument(help="UnsafeBench-layout data: a folder of parquet files, or a JSONL / CSV "
                       "manifest with image, safety_label, category, source."),
    ],
    base_model: Annotated[
        Path, typer.Option("--base-model", help="Local LLaVA-style model directory (nothing is downloaded).")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Output folder: adapter/, moderator.json (card), checkpoint/.")
    ],
    epochs: Annotated[int, typer.Option(help="Passes over the sampled prompts.")] = 1,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 2e-4,
    lora_r: Annotated[int, typer.Option("--lora-r", help="LoRA rank.")] = 8,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimizer steps.")] = None,
    batch_size: Annotated[int, typer.Option(help="Prompts per step.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed for prompt sampling and LoRA initialization.")] = 0,
    taxonomy: Annotated[
        str, typer.Option(help="Category set the prompts draw from: unsafebench or paper.")
    ] = "unsafebench",
    negative_rate: Annotated[
        float, typer.Option(help="Chance an unsafe image also gets a prompt without its category.")
    ] = 0.5,
    save_every: Annotated[int, typer.Option(help="Checkpoint interval in steps.")] = 50,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Continue from OUT/checkpoint if present.")
    ] = True,
    device: Annotated[str | None, typer.Option(help="torch device (default: cuda if available).")] = None,
) -> None:
    """LoRA-fine-tune a local VLM into a PerspectiveVision-style moderator; writes the adapter and a card."""
    try:
        from veil.moderator.train import train_moderator
        from veil.taxonomy import taxonomy as categories_of

        report = train_moderator(
            data, base_model=base_model, out=out, epochs=epochs, lr=lr, lora_r=lora_r,
            max_steps=max_steps, batch_size=batch_size, seed=seed,
            categories=[c.key for c in categories_of(taxonomy)], negative_rate=negative_rate,
            save_every=save_every, resume=resume, device=device,
        )
    except VeilError as exc:
        fail(exc)
        return
    summary = {k: report[k] for k in ("steps", "loss_before", "loss_after", "resumed_from",
                                      "seconds", "card", "adapter")}
    summary["final_loss"] = report["losses"][-1] if report["losses"] else None
    typer.echo(json.dumps(summary, indent=2))
    typer.echo(f"use it with: veil scan IMAGE --model {report['card']}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``train-moderator`` to the ``veil`` app."""
    app.command("train-moderator")(train_moderator_command)
