"""The ``veil`` command: a thin shell over :mod:`veil.pipeline`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from veil.cli_common import (
    AttributionOpt,
    BatchSizeOpt,
    CoarserOpt,
    ExtentOpt,
    LightGroup,
    MaxDepthOpt,
    MaxPixelsOpt,
    MergeOpt,
    ModelOpt,
    ParamOpt,
    RationaleOpt,
    RegistryHelpCommand,
    SearchOpt,
    SearchSizeOpt,
    SeedOpt,
    SegmentationOpt,
    SegmentSizeOpt,
    StyleOpt,
    ThresholdOpt,
    err,
    fail,
    parse_floats,  # noqa: F401 - re-exported: veil.cli.parse_floats
    parse_params,  # noqa: F401 - re-exported: veil.cli.parse_params
    pipeline_config,
    registry_names,
)
from veil.errors import InvalidParameterError, VeilError

app = typer.Typer(
    name="veil",
    help="Veil: classify, explain and minimally obfuscate unsafe images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=LightGroup,
)


@app.command(cls=RegistryHelpCommand)
def scan(
    paths: list[str] = typer.Argument(..., help="Image files, folders (searched recursively), CSV/JSONL manifests, Parquet/Arrow tables, or object-store prefixes (s3://, gs://; read with pyarrow.fs)."),
    out: str = typer.Option(..., "--out", "-o", help="Output folder (created), or with --format parquet an object-store URI (s3://bucket/prefix, gs://…; written through pyarrow.fs)."),
    model: ModelOpt = ["nudenet"],  # noqa: B006 - Typer declares defaults in the signature
    attribution: AttributionOpt = "fullgrad",
    segmentation: SegmentationOpt = "bass",
    merge: MergeOpt = None,
    segment_size: SegmentSizeOpt = 640,
    coarser: CoarserOpt = "30",
    search_size: SearchSizeOpt = 1024,
    search: SearchOpt = "greedy",
    style: StyleOpt = "blur",
    extent: ExtentOpt = "object",
    max_depth: MaxDepthOpt = 10,
    threshold: ThresholdOpt = None,
    batch_size: BatchSizeOpt = 8,
    seed: SeedOpt = 0,
    param: ParamOpt = [],  # noqa: B006
    rationale: RationaleOpt = "grounded",
    overlays: bool = typer.Option(True, help="Write attribution and region overlays (drawn on the delivered image)."),
    report: bool = typer.Option(True, help="Write report.html."),
    max_pixels: MaxPixelsOpt = 64_000_000,
    max_frames: int = typer.Option(64, help="Frames (animations) or pages (TIFF, MPO) judged per file; later ones are neither judged nor delivered."),
    keep_metadata: bool = typer.Option(False, "--keep-metadata", help="Keep EXIF (without its thumbnail), ICC and XMP in delivered images; by default all metadata (GPS, maker notes, thumbnails) is stripped."),
    fail_on_error: bool = typer.Option(False, help="Exit with code 1 if any input could not be processed."),
    engine: str = typer.Option("auto", help="Batch engine: local (this process), process (a pool of worker processes), ray (Ray Data actors; pip install 'veil[ray]'), or auto (process when more than one worker pays off, else local)."),
    workers: int = typer.Option(0, help="Worker processes (process) or actors (ray), one loaded pipeline each; 0: one per CPU when the input set is large enough to repay the start-up, else 1."),
    threads: int = typer.Option(0, help="Torch (and onnxruntime) threads per worker; 0: the CPUs divided among the workers (local: the libraries' defaults)."),
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
    from veil.output import FORMATS, FolderSink, make_sink
    from veil.report import write_report
    from veil.scan import settings_hash

    try:
        config = pipeline_config(
            model=model, attribution=attribution, segmentation=segmentation, merge=merge,
            segment_size=segment_size, coarser=coarser, search_size=search_size, search=search, style=style,
            extent=extent, max_depth=max_depth, threshold=threshold, batch_size=batch_size, seed=seed,
            param=param, rationale=rationale, max_pixels=max_pixels)
        missing = [p for p in paths if "://" not in p and not Path(p).exists()]
        if missing:
            raise InvalidParameterError(f"no such file or folder: {', '.join(missing)}")
        if max_frames < 1:
            raise InvalidParameterError(f"--max-frames must be at least 1, got {max_frames}")
        if engine not in (*ENGINES, "auto"):
            raise InvalidParameterError(f"--engine must be one of auto, {', '.join(ENGINES)}; got {engine!r}")
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
    sink.write_text("run.json", json.dumps(run_info, indent=2, default=str))
    report = report and output_format == "folder"  # the report links image files; Parquet holds bytes
    if report:
        write_report(sink.records(), sink.out, title="Veil report",
                     info={"models": ", ".join(model), "attribution": attribution, "segmentation": segmentation,
                           "search": search, "style": style})
    where = f"{sink.out}/results.jsonl" if isinstance(sink, FolderSink) else f"{sink.location}/results"
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
