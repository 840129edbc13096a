"""Batch engines: they move images and records, nothing else.

``local`` runs one pipeline in this process, ``process`` a pool of worker processes on this
machine, ``ray`` Ray Data on an actor pool (a local instance or a cluster). All three run the
same :class:`~veil.engines.base.Worker`, so for a fixed seed and settings they give the same
records and byte-identical delivered images.

Examples
--------
>>> from veil.engines import ENGINES, make_engine
>>> ENGINES
('local', 'process', 'ray')
>>> make_engine("process", workers=2).name
'process'
"""

from __future__ import annotations

import os
from typing import Any

from veil.engines.base import Engine, Outcome, ScanItem, ScanOptions, Worker
from veil.errors import UnknownNameError

#: Engine names ``--engine`` accepts.
ENGINES: tuple[str, ...] = ("local", "process", "ray")

__all__ = ["ENGINES", "Engine", "Outcome", "ScanItem", "ScanOptions", "Worker", "available_cpus",
           "choose_layout", "make_engine"]


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS
        return max(1, os.cpu_count() or 1)


#: Inputs per worker below which ``--engine auto`` stays in one process. The pool's start-up
#: (spawning, importing torch, loading the models) cost about 11 s more than one process in
#: ``bench/scale.py`` on 2 cores, and it gains 0.03-0.13 s per image at 0.3-0.45 s per image
#: (against one process with 2 or 1 threads), so it pays off from roughly 100 images.
POOL_MIN_INPUTS_PER_WORKER = 50


def choose_layout(engine: str, workers: int, threads: int, *, n_inputs: int,
                  cpus: int | None = None) -> tuple[str, int, int]:
    """Resolve ``--engine auto``, ``--workers 0`` and ``--threads 0`` into ``(engine, workers, threads)``.

    The automatic layout is one single-threaded worker per CPU (``bench/scale.py``: on 2 cores,
    2 workers × 1 thread beat 1 × 2 threads, see docs/scale.md), unless there are fewer than
    :data:`POOL_MIN_INPUTS_PER_WORKER` inputs per worker, when one process with every core
    finishes first (the pool's start-up is not repaid). Classifiers registered at run time in
    the calling process (not by importing a module) exist only there: use ``local`` for them. ``threads`` 0 means torch's default for ``local`` and the CPUs divided among
    the workers otherwise.

    Examples
    --------
    >>> choose_layout("auto", 0, 0, n_inputs=1000, cpus=2)
    ('process', 2, 1)
    >>> choose_layout("auto", 0, 0, n_inputs=3, cpus=2)
    ('local', 1, 0)
    """
    cpus = cpus or available_cpus()
    if engine not in (*ENGINES, "auto"):
        raise UnknownNameError(f"unknown engine {engine!r}; choose one of auto, {', '.join(ENGINES)}")
    if engine == "auto":
        if workers == 0:
            workers = cpus if n_inputs >= POOL_MIN_INPUTS_PER_WORKER * cpus else 1
        engine = "process" if workers > 1 else "local"
    elif workers == 0:
        workers = 1 if engine == "local" else cpus
    if engine == "local":
        workers = 1
    if threads == 0 and engine == "process":
        threads = max(1, cpus // workers)
    return engine, workers, threads


def make_engine(name: str, *, workers: int = 1, threads: int | None = None, **ray_options: Any) -> Engine:
    """The engine called ``name``.

    Parameters
    ----------
    name : {"local", "process", "ray"}
    workers : int
        Worker processes (``process``) or actors (``ray``); ignored by ``local``.
    threads : int or None
        Torch threads per worker (``local`` and ``process``; ``ray`` uses ``actor_cpus``).
        None: ``local`` keeps torch's default, ``process`` divides the CPUs among the workers.
    ray_options
        ``address``, ``actor_cpus``, ``actor_gpus``, ``num_cpus`` (:class:`veil.engines.ray.RayEngine`).
    """
    if name == "local":
        from veil.engines.local import LocalEngine

        return LocalEngine(threads=threads)
    if name == "process":
        from veil.engines.process import ProcessEngine

        return ProcessEngine(workers=workers, threads=threads or max(1, available_cpus() // max(1, workers)))
    if name == "ray":
        from veil.engines.ray import RayEngine

        return RayEngine(actors=workers, **ray_options)
    raise UnknownNameError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
