"""The ``veil`` command: a thin shell over :mod:`veil.pipeline`."""

from __future__ import annotations

import json
import re
import sys
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
    paths: list[str] = typer.Argument(..., help="Image files, folders (searched recursively), CSV/JSONL manifests, Parquet/Arrow tables, or object-store prefixes (s3://, gs://; read with pyarrow.fs)."),
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
    engine: str = typer.Option("auto", help="Batch engine: local (this process), process (a pool of worker processes), ray (Ray Data actors; pip install 'veil[ray]'), or auto (process when more than one worker pays off, else local)."),
    workers: int = typer.Option(0, help="Worker processes (process) or actors (ray), one loaded pipeline each; 0: one per CPU when the input set is large enough to repay the start-up, else 1."),
    threads: int = typer.Option(0, help="Torch threads per worker; 0: the CPUs divided among the workers (local: torch's default)."),
    ray_address: str | None = typer.Option(None, help="Ray cluster to join ('auto', 'ray://head:10001'); default: start a local Ray instance for this scan."),
    actor_cpus: float = typer.Option(1.0, help="CPUs each Ray actor reserves (its torch threads)."),
    actor_gpus: float = typer.Option(0.0, help="GPUs each Ray actor reserves (e.g. 1, or 0.5 to share one)."),
    resume: bool = typer.Option(False, "--resume", help="Keep OUT's records and skip every input whose record with the same content hash and settings exists."),
    output_format: str = typer.Option("folder", "--format", help="Output format: folder (results.jsonl, images/, masks/, overlays/, report.html) or parquet (OUT/results/part-*.parquet: one row per record with the delivered image, mask and overlays as bytes)."),
) -> None:
    """Safeguard images: classify, attribute, segment, search and deliver minimally obfuscated copies.

    PATHS are image files, folders (recursive), CSV/JSONL manifests with an 'image' column, or
    Parquet/Arrow tables with image bytes in an 'image' column. Writes OUT/results.jsonl (one
    record per input), OUT/images (delivered), OUT/masks, OUT/overlays and OUT/report.html, or
    with --format parquet OUT/results/*.parquet.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from veil import __version__
    from veil.engines import ENGINES, ScanOptions, choose_layout, make_engine
    from veil.engines.inputs import collect_inputs
    from veil.engines.run import run_scan
    from veil.output import FORMATS, make_sink
    from veil.pipeline import SafeguardConfig
    from veil.report import write_report
    from veil.scan import settings_hash

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
        missing = [p for p in paths if "://" not in p and not Path(p).exists()]
        if missing:
            raise InvalidParameterError(f"no such file or folder: {', '.join(missing)}")
        if max_frames < 1:
            raise InvalidParameterError(f"--max-frames must be at least 1, got {max_frames}")
        if engine not in (*ENGINES, "auto"):
            raise InvalidParameterError(f"--engine must be one of auto, {', '.join(ENGINES)}; got {engine!r}")
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:/", str(out)):  # Path() has folded s3:// into s3:/
            raise InvalidParameterError(
                f"--out {out!s} looks like an object-store URI; write to a local (or mounted) folder, "
                "e.g. --format parquet into a local folder, and copy the parts up")
        if output_format not in FORMATS:
            raise InvalidParameterError(f"--format must be one of {', '.join(FORMATS)}; got {output_format!r}")
        if workers < 0 or threads < 0:
            raise InvalidParameterError(f"--workers and --threads must be >= 0 (0: automatic), got {workers} and {threads}")
        inputs = collect_inputs(list(paths))
        if not inputs:
            raise InvalidParameterError(f"no files found under {', '.join(map(str, paths))}")
        name, n_workers, n_threads = choose_layout(engine, workers, threads, n_inputs=len(inputs))
        if name == "ray":
            n_threads = max(1, int(actor_cpus))  # each actor's torch threads
        runner = make_engine(name, workers=n_workers, threads=n_threads or None, address=ray_address,
                             actor_cpus=actor_cpus, actor_gpus=actor_gpus)
        options = ScanOptions(config, settings_hash(config, max_frames=max_frames, keep_metadata=keep_metadata,
                                                    overlays=overlays),
                              max_frames=max_frames, keep_metadata=keep_metadata, overlays=overlays)
        sink = make_sink(output_format, out, resume=resume, max_frames=max_frames,
                         settings_hash=options.settings_hash)
    except VeilError as exc:
        fail(exc)
        return

    with Progress(
        TextColumn("[bold]scan"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[name]}"),
        TimeRemainingColumn(), console=err, transient=False,
    ) as progress:
        task = progress.add_task("scan", total=None, name=f"loading models ({name} engine, {n_workers} worker(s))")

        def started(n: int) -> None:
            progress.update(task, total=n)

        def advanced(outcome: Any) -> None:
            progress.update(task, advance=1, name=outcome.records[0]["path"] if outcome.records else "")

        try:
            summary = run_scan(inputs, sink, runner, options, on_start=started, on_outcome=advanced)
        except VeilError as exc:
            sink.close()
            progress.stop()
            fail(exc)
            return
        finally:
            sink.close()
    counts = summary.counts
    run_info = {"veil": __version__, "config": config.to_dict(), "settings_hash": options.settings_hash,
                "engine": name, "workers": n_workers, "threads": n_threads, "format": output_format,
                "n_files": len(inputs), "n_resumed": summary.n_resumed, "n_images": counts.images,
                "n_skipped": counts.skipped, "n_failed": counts.failed, "keep_metadata": keep_metadata,
                "max_frames": max_frames, "seconds": round(summary.seconds, 2)}
    (sink.out / "run.json").write_text(json.dumps(run_info, indent=2, default=str))
    report = report and output_format == "folder"  # the report links image files; Parquet holds bytes
    if report:
        write_report(sink.records(), sink.out, title="Veil report",
                     info={"models": ", ".join(model), "attribution": attribution, "segmentation": segmentation,
                           "search": search, "style": style})
    where = sink.out / ("results.jsonl" if output_format == "folder" else "results")
    err.print(
        f"{counts.summary()}"
        + (f" · {summary.n_resumed} already done (--resume)" if summary.n_resumed else "")
        + f" · {summary.seconds:.1f}s ({name} engine, {n_workers}×{n_threads or 'default'} threads) → {where}"
        + (f", {sink.out}/report.html" if report else "")
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
