"""The ``local`` engine: one worker in this process (what ``veil scan`` always did)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator

from veil.engines.base import Outcome, ScanItem, ScanOptions, Worker


class LocalEngine:
    """Safeguard items one after another in this process, with one loaded pipeline.

    Delivered files are encoded on a background thread (:class:`veil.scan.BackgroundWriter`)
    while the next item runs, as ``veil scan`` did before engines existed.

    Parameters
    ----------
    threads : int or None
        Torch threads (None: torch's default, every core).
    """

    name = "local"

    def __init__(self, *, threads: int | None = None) -> None:
        self.threads = threads

    def run(self, items: Iterable[ScanItem], options: ScanOptions) -> Iterator[Outcome]:
        # the files of one item are encoded on a writer thread while the next is safeguarded
        worker = Worker(options, threads=self.threads, background=True)
        pending: deque[Callable[[], Outcome]] = deque()
        try:
            for item in items:
                pending.append(worker.start(item))
                while len(pending) > 1:
                    yield pending.popleft()()
            while pending:
                yield pending.popleft()()
        finally:
            worker.close()
