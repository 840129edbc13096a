"""The ``ray`` engine: Ray Data ``map_batches`` over an actor pool, one pipeline per actor.

Each actor builds one :class:`~veil.engines.base.Worker` (so one
:class:`~veil.pipeline.Safeguarder`, its models loaded once) and reuses it for every item.
Items travel as rows (paths, or bytes for Parquet inputs); outcomes come back pickled, in
input order, to the driver, which alone writes the output. Works on a local instance
(``ray.init(num_cpus=...)``, started and stopped here) or an existing cluster
(``address="auto"`` or ``ray://host:10001``), which is left running.

Ray is an optional extra: ``pip install 'veil[ray]'``.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from veil.engines.base import Outcome, ScanItem, ScanOptions, Worker, forwarded_env, thread_env
from veil.errors import InvalidParameterError, MissingDependencyError


def import_ray() -> Any:
    """``ray`` and ``ray.data``, or an error naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data ships in ray[data]
    except ImportError as exc:
        raise MissingDependencyError(
            "the ray engine needs Ray Data; install it with `pip install 'veil[ray]'` "
            "(or choose --engine local or --engine process)"
        ) from exc
    return ray


class _Actor:
    """A Ray Data callable class: one worker per actor, reused for every batch."""

    def __init__(self, options: ScanOptions, threads: int | None) -> None:
        self.worker = Worker(options, threads=threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = []
        for i in range(len(batch["index"])):
            data = batch["data"][i]
            file = batch["file"][i]
            item = ScanItem(int(batch["index"][i]), str(batch["path"][i]), str(batch["stem"][i]),
                            file=None if file is None or file == "" else str(file),
                            data=None if data is None or len(data) == 0 else bytes(data))
            outs.append(pickle.dumps(self.worker.process(item), protocol=pickle.HIGHEST_PROTOCOL))
        out = np.empty(len(outs), dtype=object)
        out[:] = outs
        return {"index": np.asarray(batch["index"]), "outcome": out}


class RayEngine:
    """Safeguard items with Ray Data on ``actors`` actors of ``actor_cpus`` CPUs (and ``actor_gpus`` GPUs).

    Parameters
    ----------
    actors : int
        Size of the actor pool (one loaded pipeline each).
    address : str or None
        An existing cluster (``"auto"``, ``"ray://head:10001"``); None starts a local instance
        with ``num_cpus`` CPUs and shuts it down afterwards.
    actor_cpus, actor_gpus : float
        Resources each actor reserves; torch runs ``max(1, int(actor_cpus))`` threads.
    num_cpus : int or None
        CPUs of a local instance (None: every core).
    """

    name = "ray"

    def __init__(self, *, actors: int = 1, address: str | None = None, actor_cpus: float = 1.0,
                 actor_gpus: float = 0.0, num_cpus: int | None = None) -> None:
        if actors < 1:
            raise InvalidParameterError(f"actors (--workers) must be at least 1, got {actors}")
        if actor_cpus <= 0:
            raise InvalidParameterError(f"actor_cpus (--actor-cpus) must be positive, got {actor_cpus}")
        if actor_gpus < 0:
            raise InvalidParameterError(f"actor_gpus (--actor-gpus) must be >= 0, got {actor_gpus}")
        self.ray = import_ray()
        self.actors = actors
        self.address = address
        self.actor_cpus = actor_cpus
        self.actor_gpus = actor_gpus
        self.num_cpus = num_cpus

    def run(self, items: Iterable[ScanItem], options: ScanOptions) -> Iterator[Outcome]:
        ray = self.ray
        started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "logging_level": logging.WARNING}
            if self.address is None:
                kwargs["num_cpus"] = self.num_cpus
            ray.init(address=self.address, **kwargs)
            started = True
        try:
            rows = [{"index": it.index, "path": it.path, "stem": it.stem, "file": it.file or "",
                     "data": it.data or b""} for it in items]
            if not rows:
                return
            logging.getLogger("ray.data").setLevel(logging.WARNING)  # no execution-plan chatter per scan
            ctx = ray.data.DataContext.get_current()
            ctx.execution_options.preserve_order = True
            ctx.enable_progress_bars = False
            # small blocks stream outcomes back as they finish (and spread work evenly); bounded for huge sets
            ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), 1000 * self.actors))
            ds = ds.map_batches(
                _Actor, batch_size=1, compute=ray.data.ActorPoolStrategy(size=self.actors),
                fn_constructor_kwargs={"options": options, "threads": max(1, int(self.actor_cpus))},
                num_cpus=self.actor_cpus, num_gpus=self.actor_gpus or None,
                runtime_env={"env_vars": {**thread_env(max(1, int(self.actor_cpus))), **forwarded_env()}},
            )
            for row in ds.iter_rows():
                yield pickle.loads(row["outcome"])
        finally:
            if started:
                ray.shutdown()
