"""``veil bench classifiers`` and ``veil bench obfuscation``: thin shells over :mod:`veil.bench`.

``veil.cli`` calls :func:`register` on its Typer app. Errors a user can cause
(:class:`~veil.errors.VeilError`) become a one-line message and exit code 2.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from veil.cli_common import LightGroup, RegistryHelpCommand, err, fail
from veil.errors import InvalidParameterError, VeilError

# Options both bench commands take.
Limit = Annotated[int | None, typer.Option(help="Use only the first N samples.")]
Charts = Annotated[bool, typer.Option("--charts/--no-charts", help="Write PNG charts.")]
Threads = Annotated[int | None, typer.Option(help="Torch CPU threads (1 is often fastest for small models on a "
                                             "busy machine).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _floats(values: list[str] | None, default: tuple[float, ...]) -> list[float]:
    out: list[float] = []
    for v in values or []:
        for part in _csv(v):
            try:
                out.append(float(part))
            except ValueError:
                raise InvalidParameterError(f"--eps {part!r} is not a number; use e.g. --eps 0.01 "
                                            "or --eps 0.001,0.01,0.03") from None
    return out or list(default)


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """Yield ``add(description, total) -> advance(n)`` backed by a Rich progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if quiet:
        yield lambda _d, _t: (lambda _n: None)
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=False) as progress:
        def add(description: str, total: int) -> Callable[[int], None]:
            task = progress.add_task(description, total=total)
            return lambda n: progress.advance(task, n)

        yield add


def _threads(n: int | None) -> None:
    if n is None:
        return
    if n < 1:
        raise InvalidParameterError(f"--threads must be at least 1, got {n}")
    import torch

    torch.set_num_threads(n)


def _load(dataset: Path, layout: str | None, limit: int | None, models: list[str]) -> tuple[Any, list[Any]]:
    from veil.bench.datasets import load_dataset
    from veil.classify import load_classifier

    if not models:
        raise InvalidParameterError("--model is required: a registered name (nudenet) or a model card JSON")
    ds = load_dataset(dataset, layout=layout, limit=limit)
    return ds, [load_classifier(m) for m in models]


def _command() -> str:
    """The command line that produced a report (recorded in it)."""
    return "veil " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _summary(paths: dict[str, Path], unreadable: int) -> None:
    err.print(f"wrote {paths['json']}, {paths['md'].name}, {paths['html'].name}"
               + (f" and {len(paths) - 3} chart(s)" if len(paths) > 3 else ""), highlight=False)
    if unreadable:
        err.print(f"[yellow]{unreadable} unreadable image(s) skipped; listed in report.json[/]", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command group to ``app``.

    Examples
    --------
    >>> import typer
    >>> app = typer.Typer()
    >>> register(app)
    """
    bench = typer.Typer(help="Benchmark safety classifiers (effectiveness, robustness) and obfuscation.",
                        no_args_is_help=True, cls=LightGroup)

    @bench.command("classifiers", cls=RegistryHelpCommand)
    def classifiers_command(
        dataset: Annotated[Path, typer.Option(help="ImageFolder root, .csv/.jsonl manifest, or UnsafeBench "
                                              "parquet / save_to_disk folder.")],
        model: Annotated[list[str], typer.Option(help="Classifier: registered name or model card JSON. "
                                                 "Repeat for several.")],
        out: Annotated[Path, typer.Option(help="Folder for report.json, report.md, report.html and charts.")],
        layout: Annotated[str | None, typer.Option(help="imagefolder, manifest or unsafebench "
                                                   "(default: detected).")] = None,
        attacks: Annotated[str, typer.Option(help="Comma-separated robustness attacks from {attack}, "
                                             "or 'none'.")]
        = "noise,fgsm,pgd,deepfool",
        eps: Annotated[list[str] | None, typer.Option(help="Attack budget(s) in normalized input space; "
                                                      "repeat or comma-separate for a sweep.")] = None,
        robust_k: Annotated[int, typer.Option(help="Correctly classified images attacked per classifier.")] = 50,
        pgd_steps: Annotated[int, typer.Option(help="PGD iterations.")] = 100,
        seed: Annotated[int, typer.Option(help="Seed of the robustness sample and the noise.")] = 0,
        limit: Limit = None,
        batch_size: Annotated[int, typer.Option(help="Images classified per batch.")] = 16,
        charts: Charts = True,
        threads: Threads = None,
        quiet: Quiet = False,
    ) -> None:
        """Effectiveness per category and source, and robust accuracy under attacks."""
        from veil.bench.metrics import benchmark_classifiers
        from veil.bench.report import write_report

        try:
            _threads(threads)
            names = [] if attacks.strip().lower() in ("", "none") else _csv(attacks)
            from veil.bench.attacks import ATTACKS

            for a in names:
                ATTACKS.get(a)
            eps_values = _floats(eps, (0.01,))
            ds, clfs = _load(dataset, layout, limit, model)
            with _progress(quiet) as add:
                scored = add("classifying", len(ds))
                attacked = add("attacking", len(clfs) * len(names) * len(eps_values)) if names else None
                report = benchmark_classifiers(ds, clfs, attacks=names, eps=eps_values, robust_k=robust_k,
                                               pgd_steps=pgd_steps, seed=seed, batch_size=batch_size,
                                               on_batch=scored, on_attack=attacked)
            report["title"] = "Veil classifier benchmark"
            report["command"] = _command()
            paths = write_report(report, out, charts=charts)
        except VeilError as exc:
            fail(exc)
            return
        _summary(paths, len(report["unreadable"]))

    @bench.command("obfuscation", cls=RegistryHelpCommand)
    def obfuscation_command(
        dataset: Annotated[Path, typer.Option(help="Dataset with unsafe images (masks give precision/recall/IoU).")],
        model: Annotated[list[str], typer.Option(help="Classifier: registered name or model card JSON. "
                                                 "Repeat for several.")],
        out: Annotated[Path, typer.Option(help="Folder for report.json, report.md, report.html and charts.")],
        layout: Annotated[str | None, typer.Option(help="imagefolder, manifest or unsafebench.")] = None,
        attributions: Annotated[str, typer.Option(help="Comma-separated attribution methods ({attribution}).")] = "fullgrad",
        segmentations: Annotated[str, typer.Option(help="Comma-separated segmentations ({segmentation}).")] = "slic",
        searches: Annotated[str, typer.Option(help="Comma-separated search strategies ({search}; the first one runs "
                                              "the attribution × segmentation grid).")] = "greedy",
        style: Annotated[str, typer.Option(help="Obfuscation style ({style}).")] = "blur",
        max_depth: Annotated[int, typer.Option(help="Most regions obfuscated per image.")] = 10,
        seed: Annotated[int, typer.Option(help="Seed of randomized stages.")] = 0,
        limit: Limit = None,
        charts: Charts = True,
        threads: Threads = None,
        quiet: Quiet = False,
    ) -> None:
        """Counterfactual rate, depth, area, mask precision/recall/IoU and speed per configuration."""
        from veil.bench.obfuscation import benchmark_obfuscation, obfuscation_configs
        from veil.bench.report import write_report

        try:
            _threads(threads)
            atts, segs, srchs = _csv(attributions), _csv(segmentations), _csv(searches)
            cells = obfuscation_configs(atts, segs, srchs)
            ds, clfs = _load(dataset, layout, limit, model)
            n_unsafe = sum(s.label for s in ds)
            with _progress(quiet) as add:
                step = add("safeguarding", len(cells) * n_unsafe)
                report = benchmark_obfuscation(ds, clfs, attributions=atts, segmentations=segs, searches=srchs,
                                               style=style, max_depth=max_depth, seed=seed, on_image=step,
                                               command=_command())
            paths = write_report(report, out, charts=charts)
        except VeilError as exc:
            fail(exc)
            return
        _summary(paths, len(report["unreadable"]))

    app.add_typer(bench, name="bench")
