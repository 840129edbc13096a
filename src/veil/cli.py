"""The ``veil`` command: a thin shell over :mod:`veil.pipeline`."""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import typer

from veil.cli_common import RegistryHelpCommand, err, fail, registry_names
from veil.errors import InvalidParameterError, VeilError

app = typer.Typer(
    name="veil",
    help="Veil: classify, explain and minimally obfuscate unsafe images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def parse_params(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["segmentation.n_segments=50", "style.strength=0.1"]`` → per-stage option dicts."""
    stages: dict[str, dict[str, Any]] = {
        "attribution": {}, "segmentation": {}, "search": {}, "style": {}, "rationale": {}}
    for item in items:
        key, sep, raw = item.partition("=")
        stage, dot, name = key.partition(".")
        if not sep or not dot or stage not in stages or not name:
            raise InvalidParameterError(
                f"--param {item!r} must look like STAGE.NAME=VALUE with STAGE one of {', '.join(stages)}"
            )
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        stages[stage][name] = value
    return stages


def parse_floats(text: str, option: str) -> tuple[float, ...]:
    """``"30,60"`` → ``(30.0, 60.0)``; ``"none"`` or ``""`` → ``()``."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise InvalidParameterError(f"{option} takes comma-separated numbers or 'none', got {text!r}") from None


@app.command(cls=RegistryHelpCommand)
def scan(
    paths: list[Path] = typer.Argument(..., help="Image files and folders (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created)."),
    model: list[str] = typer.Option(
        ["nudenet"], "--model", "-m",
        help="Classifier: a registered name ({classifier}) or a model card JSON ({card_format}). Repeat for several.",
    ),
    attribution: str = typer.Option("fullgrad", help="Attribution method: {attribution}."),
    segmentation: str = typer.Option("bass", help="Segmenter: {segmentation}."),
    merge: float | None = typer.Option(None, help="Join touching segments whose mean Lab colours differ by less than this (0: off; default {merge_defaults}, off for the others)."),
    segment_size: int = typer.Option(640, help="Segment on a copy whose longer side is at most this many pixels (0: full resolution)."),
    coarser: str = typer.Option("30", help="Comma-separated larger merge thresholds retried before failing closed ('none': fail closed at once)."),
    search_size: int = typer.Option(1024, help="Attribute, segment and search on a copy whose longer side is at most this many pixels; the mask is scaled back and the full-size result re-classified (0: full resolution)."),
    search: str = typer.Option("greedy", help="Search strategy: {search}."),
    style: str = typer.Option("blur", help="Obfuscation style: {style}."),
    extent: str = typer.Option("object", help="How much to hide ({extent}): object (the whole object that carried the evidence) or minimal (the search's regions only, the paper's)."),
    max_depth: int = typer.Option(10, help="Most regions to obfuscate before failing closed."),
    threshold: float | None = typer.Option(None, help="Unsafe threshold for every model (default: each model's own, 0.5)."),
    batch_size: int = typer.Option(8, help="Candidate images classified per batch during the search."),
    seed: int = typer.Option(0, help="Seed for randomized stages; recorded in each result."),
    param: list[str] = typer.Option([], "--param", "-p", help="Stage option STAGE.NAME=VALUE, e.g. segmentation.n_segments=50. Repeatable."),
    rationale: str = typer.Option("grounded", help="Rationale backend explaining each result: {rationale} (grounded is offline), or none."),
    overlays: bool = typer.Option(True, help="Write attribution and region overlays (drawn on the delivered image)."),
    report: bool = typer.Option(True, help="Write report.html."),
    max_pixels: int = typer.Option(64_000_000, help="Refuse images with more pixels (decompression-bomb guard)."),
    max_frames: int = typer.Option(64, help="Frames (animations) or pages (TIFF, MPO) judged per file; later ones are neither judged nor delivered."),
    keep_metadata: bool = typer.Option(False, "--keep-metadata", help="Keep EXIF (without its thumbnail), ICC and XMP in delivered images; by default all metadata (GPS, maker notes, thumbnails) is stripped."),
    fail_on_error: bool = typer.Option(False, help="Exit with code 1 if any input could not be processed."),
) -> None:
    """Safeguard images: classify, attribute, segment, search and deliver minimally obfuscated copies.

    Writes OUT/results.jsonl (one record per input), OUT/images (delivered), OUT/masks,
    OUT/overlays and OUT/report.html.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from veil import __version__
    from veil.image import iter_scan_files
    from veil.output import ResultWriter, plan_names
    from veil.pipeline import SafeguardConfig, Safeguarder
    from veil.report import write_report
    from veil.scan import BackgroundWriter, Deferred, ScanCounts, scan_file

    try:
        stages = parse_params(param)
        config = SafeguardConfig(
            models=tuple(model), attribution=attribution, segmentation=segmentation, search=search, extent=extent,
            style=style, max_depth=max_depth, threshold=threshold, batch_size=batch_size, seed=seed,
            merge=merge, segment_size=segment_size or None, coarser=parse_floats(coarser, "--coarser"),
            search_size=search_size or None, max_pixels=max_pixels,
            rationale=None if rationale.lower() == "none" else rationale,
            attribution_options=stages["attribution"], segmentation_options=stages["segmentation"],
            search_options=stages["search"], style_options=stages["style"],
            rationale_options=stages["rationale"],
        )
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise InvalidParameterError(f"no such file or folder: {', '.join(missing)}")
        if max_frames < 1:
            raise InvalidParameterError(f"--max-frames must be at least 1, got {max_frames}")
        items = iter_scan_files(list(paths))
        if not items:
            raise InvalidParameterError(f"no files found under {', '.join(map(str, paths))}")
        with err.status("loading models…"):
            sg = Safeguarder(config)
    except VeilError as exc:
        fail(exc)
        return

    writer = ResultWriter(out, overlays=overlays)
    stems = plan_names(items)
    records: list[dict[str, Any]] = []
    counts = ScanCounts(files=len(items))
    t0 = time.perf_counter()
    background = BackgroundWriter(writer)
    pending: deque[tuple[Any, bool]] = deque()  # (record or Deferred, last of its file)

    def emit(block: bool) -> None:
        # records reach results.jsonl in input order, once their files are on disk
        while pending and (block or not isinstance(pending[0][0], Deferred) or pending[0][0].future.done()):
            item, last = pending.popleft()
            rec = item.get() if isinstance(item, Deferred) else item
            counts.add(rec)
            fh.write(json.dumps(rec) + "\n")
            records.append(rec)
            if last:
                fh.flush()
                progress.advance(task)

    with open(writer.out / "results.jsonl", "w", encoding="utf-8") as fh, Progress(
        TextColumn("[bold]scan"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[name]}"),
        TimeRemainingColumn(), console=err, transient=False,
    ) as progress:
        task = progress.add_task("scan", total=len(items), name="")
        try:
            for (src, rel), stem in zip(items, stems, strict=True):
                progress.update(task, name=str(rel))
                recs = scan_file(sg, src, stem, background, max_frames=max_frames, keep_metadata=keep_metadata)
                pending.extend((r, i == len(recs) - 1) for i, r in enumerate(recs))
                if not recs:
                    progress.advance(task)
                emit(block=False)
            emit(block=True)
        finally:
            background.close()
    elapsed = time.perf_counter() - t0
    run_info = {"veil": __version__, "config": config.to_dict(), "n_files": len(items), "n_images": counts.images,
                "n_skipped": counts.skipped, "n_failed": counts.failed, "keep_metadata": keep_metadata,
                "max_frames": max_frames, "seconds": round(elapsed, 2)}
    (writer.out / "run.json").write_text(json.dumps(run_info, indent=2, default=str))
    if report:
        write_report(records, writer.out, title="Veil report",
                     info={"models": ", ".join(model), "attribution": attribution, "segmentation": segmentation,
                           "search": search, "style": style})
    err.print(
        f"{counts.summary()} · {elapsed:.1f}s → {writer.out}/results.jsonl"
        + (f", {writer.out}/report.html" if report else "")
    )
    if fail_on_error and counts.failed:
        raise typer.Exit(code=1)


@app.command("list")
def list_registries() -> None:
    """Print the registered classifiers, attribution methods, segmenters, searches and styles."""
    names = registry_names()
    typer.echo(f"classifiers:   {names['classifier']} (or a model card .json: {names['card_format']})")
    for kind in ("attribution", "segmentation", "search", "style"):
        typer.echo(f"{kind + ':':<14} {names[kind]}")


@app.command()
def version() -> None:
    """Print Veil's version."""
    from veil import __version__

    typer.echo(__version__)


def _register_plugins() -> None:
    import importlib

    for mod in ("veil.cli_train", "veil.cli_explain", "veil.cli_bench", "veil.cli_moderator", "veil.cli_serve"):
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name is None or not mod.startswith(exc.name):
                raise  # a plugin that exists but is broken must not be hidden
            continue
        module.register(app)


_register_plugins()


def main() -> None:  # pragma: no cover
    try:
        app()
    except VeilError as exc:
        try:
            fail(exc)
        except typer.Exit as done:
            sys.exit(done.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
