"""The ``local`` engine: one worker in this process (what ``veil scan`` always did)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from veil.engines.base import Outcome, ScanItem, ScanOptions, Worker


class LocalEngine:
    """Safeguard items one after another in this process, with one loaded pipeline.

    Parameters
    ----------
    threads : int or None
        Torch threads (None: torch's default, every core).
    """

    name = "local"

    def __init__(self, *, threads: int | None = None) -> None:
        self.threads = threads

    def run(self, items: Iterable[ScanItem], options: ScanOptions) -> Iterator[Outcome]:
        worker = Worker(options, threads=self.threads)
        try:
            for item in items:
                yield worker.process(item)
        finally:
            worker.close()
