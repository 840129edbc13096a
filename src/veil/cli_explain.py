"""``veil explain`` and ``veil train-vlm``: thin shells over :mod:`veil.rationale`.

Registered on the main app by :func:`register` (``veil.cli`` discovers it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from veil.cli_common import RegistryHelpCommand, fail
from veil.errors import InvalidParameterError, VeilError

__all__ = ["PAPER_QUESTIONS", "register"]


def _paper_questions() -> list[str]:
    from veil.taxonomy import GENERAL_QUESTIONS, taxonomy

    return [c.questions[0] for c in taxonomy("paper")] + list(GENERAL_QUESTIONS)


#: What ``--questions paper`` expands to: one curated question per paper category plus the open ones.
PAPER_QUESTIONS: tuple[str, ...] = tuple(_paper_questions())


def _expand_questions(questions: list[str]) -> list[str]:
    out: list[str] = []
    for q in questions:
        out.extend(PAPER_QUESTIONS if q.strip().lower() == "paper" else [q])
    return out


def explain_command(
    image: Annotated[Path, typer.Argument(help="Image file to safeguard and explain.")],
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model", "-m",
            help="Classifier: a registered name (nudenet) or a model card JSON. Repeat for several "
            "(default: nudenet).",
        ),
    ] = None,
    questions: Annotated[
        list[str] | None,
        typer.Option(
            "--questions", "-q",
            help="Moderator question to answer; repeatable. 'paper' asks the paper's curated set.",
        ),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="Rationale backend: {rationale}.")
    ] = "grounded",
    strength: Annotated[
        float, typer.Option(help="Conditioning strength in [0, 1]; 0 = plain question.")
    ] = 1.0,
    vlm_path: Annotated[
        Path | None, typer.Option(help="Local model directory (transformers backend).")
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1."),
    ] = None,
    vlm_model: Annotated[
        str | None, typer.Option(help="Model name sent to the openai endpoint.")
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(help="Unsafe threshold for every model (default: each model's own)."),
    ] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Cap on generated tokens (transformers backend).")
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(help="torch device for the transformers backend (default: cuda if available)."),
    ] = None,
) -> None:
    """Safeguard IMAGE and print why it was (or was not) flagged, as JSON.

    The VLM backends see the original image, conditioned on the classifiers'
    control code; the grounded backend composes the rationale from it offline.
    """
    from veil import pipeline
    from veil.classify.formats import card_categories
    from veil.image import load_image
    from veil.rationale import explain, load_backend
    from veil.rationale.base import backend_options

    try:
        if not image.is_file():
            raise InvalidParameterError(f"no such image file: {image}")
        qs = _expand_questions(questions or [])
        model = list(model or ["nudenet"])
        opts = backend_options(
            backend, {"path": None if vlm_path is None else str(vlm_path), "max_new_tokens": max_new_tokens,
                      "device": device, "base_url": base_url, "model": vlm_model},
            flags={"path": "--vlm-path", "max_new_tokens": "--max-new-tokens", "device": "--device",
                   "base_url": "--base-url", "model": "--vlm-model"})
        b = load_backend(backend, **opts)  # fail fast, before classifying
        original = load_image(str(image))
        config = pipeline.SafeguardConfig(models=tuple(model), threshold=threshold)
        result = pipeline.safeguard(original, config)
        rationale = explain(
            result, backend=b, strength=strength, categories=card_categories(model),
            questions=qs or None, image=original,
        )
    except VeilError as exc:
        fail(exc)
        return
    record = {
        "image": str(image),
        "unsafe": bool(result.unsafe),
        "fail_closed": bool(result.fail_closed),
        "answers": rationale.pop("answers", []),
        "rationale": rationale,
    }
    typer.echo(json.dumps(record, indent=2))


def train_vlm_command(
    data: Annotated[
        Path, typer.Argument(help="JSONL of {image, instruction | question + control, answer}.")
    ],
    model_dir: Annotated[
        Path, typer.Option("--model-dir", help="Local InstructBLIP-style model directory.")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Where to save the fine-tuned model (created).")
    ],
    epochs: Annotated[int, typer.Option(help="Passes over the data.")] = 1,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 1e-5,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop after this many optimizer steps.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Examples per step.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed for shuffling and initialization.")] = 0,
    device: Annotated[
        str | None, typer.Option(help="torch device (default: cuda if available).")
    ] = None,
    save_every: Annotated[
        int | None, typer.Option(help="Write OUT/checkpoint.pt every this many steps (and per epoch).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Continue from OUT/checkpoint.pt when it matches.")
    ] = False,
) -> None:
    """Fine-tune only the Q-Former of an InstructBLIP-style model on conditioned instructions."""
    from veil.rationale.train_vlm import train_vlm

    try:
        report = train_vlm(
            data, model_dir=model_dir, out=out, epochs=epochs, lr=lr, max_steps=max_steps,
            batch_size=batch_size, seed=seed, device=device, save_every=save_every, resume=resume,
        )
    except VeilError as exc:
        fail(exc)
        return
    typer.echo(json.dumps(report, indent=2))


def register(app: typer.Typer) -> None:
    """Add ``explain`` and ``train-vlm`` to the ``veil`` app."""
    app.command("explain", cls=RegistryHelpCommand)(explain_command)
    app.command("train-vlm")(train_vlm_command)
