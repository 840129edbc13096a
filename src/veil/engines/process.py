"""The ``process`` engine: a pool of worker processes on this machine, one pipeline each.

Workers are started with ``spawn`` (never ``fork``: a forked copy of a process whose OpenMP
pool has run can dead-lock), each loads its own models once and runs with ``threads`` torch
threads, so ``workers × threads`` matches the cores instead of oversubscribing them.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from veil.engines.base import THREAD_ENV, Outcome, ScanItem, ScanOptions, Worker, thread_env
from veil.errors import InvalidParameterError, VeilError

_WORKER: Worker | None = None
_START_ERROR: Exception | None = None


def _init(options: ScanOptions, threads: int | None) -> None:
    global _WORKER, _START_ERROR
    try:
        _WORKER = Worker(options, threads=threads)
    except Exception as exc:  # noqa: BLE001 - re-raised with the first item, in the driver
        _START_ERROR = exc


def _process(item: ScanItem) -> Outcome:
    if _WORKER is None:
        raise _START_ERROR or RuntimeError("worker process was not initialised")
    return _WORKER.process(item)


class EngineError(VeilError, RuntimeError):
    """A worker process died (killed, out of memory) or could not start."""


class ProcessEngine:
    """Safeguard items on ``workers`` processes, each with ``threads`` torch threads.

    At most ``2 × workers`` items are in flight, so a long input list is never held as
    pending work (Parquet rows carry their bytes).

    Parameters
    ----------
    workers : int
        Worker processes (≥ 1).
    threads : int
        Torch (and OpenMP/MKL) threads per worker.
    """

    name = "process"

    def __init__(self, *, workers: int, threads: int = 1) -> None:
        if workers < 1:
            raise InvalidParameterError(f"workers must be at least 1, got {workers}")
        if threads < 1:
            raise InvalidParameterError(f"threads must be at least 1, got {threads}")
        self.workers = workers
        self.threads = threads

    def run(self, items: Iterable[ScanItem], options: ScanOptions) -> Iterator[Outcome]:
        ctx = multiprocessing.get_context("spawn")
        pending: deque[Future[Outcome]] = deque()
        window = 2 * self.workers
        # workers are spawned while items are submitted and inherit this environment, so
        # numpy's and scipy's BLAS pools start with `threads` threads (they are sized when
        # loaded, before the initializer runs); restored when the pool is done
        saved = {k: os.environ.get(k) for k in THREAD_ENV}
        os.environ.update(thread_env(self.threads))
        try:
            yield from self._run(ctx, pending, window, items, options)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def _run(self, ctx: Any, pending: deque[Future[Outcome]], window: int, items: Iterable[ScanItem],
             options: ScanOptions) -> Iterator[Outcome]:
        with ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init,
                                 initargs=(options, self.threads)) as pool:
            try:
                for item in items:
                    pending.append(pool.submit(_process, item))
                    while len(pending) >= window or (pending and pending[0].done()):
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            except BrokenProcessPool as exc:
                raise EngineError(
                    f"a worker process died ({exc}); the records written so far are complete: "
                    "rerun with --resume to continue (fewer --workers if memory ran out)"
                ) from exc
            finally:
                for f in pending:
                    f.cancel()
