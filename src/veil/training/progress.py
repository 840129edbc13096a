"""The one progress display of every trainer: a Rich progress bar on stderr."""

from __future__ import annotations

from typing import Any

__all__ = ["make_progress"]


def make_progress(enabled: bool) -> Any:
    """A :class:`rich.progress.Progress` with description, bar, count, an ``info`` field and times.

    Tasks are added with ``add_task(description, total=…, info="")``; ``enabled=False`` shows
    nothing (the calls still work).

    Examples
    --------
    >>> with make_progress(False) as p:
    ...     task = p.add_task("train", total=2, info="")
    ...     p.advance(task)
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        disable=not enabled,
    )
