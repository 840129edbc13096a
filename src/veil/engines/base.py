"""What every engine shares: the unit of work, the options, the outcome, and the worker.

An engine moves :class:`ScanItem` s to :class:`Worker` s and their :class:`Outcome` s back,
in input order; it never touches pixels. A worker builds one
:class:`~veil.pipeline.Safeguarder` and reuses it for every item it is given, runs
:func:`veil.scan.scan_file` (the same code whichever engine runs it) and returns the records
together with the bytes of the files they name, so the driver alone writes the output — a
folder or Parquet files — and the answer cannot depend on the engine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover - the pipeline pulls in torch
    from veil.pipeline import SafeguardConfig

#: Environment variables that size the thread pools of the numeric libraries a worker loads.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


@dataclass(frozen=True)
class ScanItem:
    """One input file (or one row of a Parquet input) to safeguard.

    Attributes
    ----------
    index : int
        Position in the scan's input list; outcomes come back in this order.
    path : str
        The record's ``path`` (a file path, or ``table.parquet#row``).
    stem : str
        Output name without extension, unique in the scan (:func:`veil.output.plan_names`).
    file : str or None
        Local file or object-store URI (read by the worker); None when ``data`` holds the bytes.
    data : bytes or None
        The file's bytes (Parquet inputs).
    """

    index: int
    path: str
    stem: str
    file: str | None = None
    data: bytes | None = field(default=None, repr=False)

    def source(self) -> Path | bytes:
        if self.data is not None:
            return self.data
        if self.file is None:
            from veil.errors import InvalidParameterError

            raise InvalidParameterError(f"scan item {self.path!r} has neither a file nor data")
        if "://" in self.file:
            from veil.engines.inputs import read_uri

            return read_uri(self.file)
        return Path(self.file)


@dataclass(frozen=True)
class ScanOptions:
    """Everything a worker needs besides the item; picklable, so it travels to processes and actors."""

    config: SafeguardConfig
    settings_hash: str
    max_frames: int = 64
    keep_metadata: bool = False
    overlays: bool = True


@dataclass
class Outcome:
    """The records of one item (one per frame) and the bytes of every file they name."""

    index: int
    records: list[dict[str, Any]]
    files: dict[str, bytes] = field(default_factory=dict)
    #: Time the worker spent on the item (pipeline and encoding), for engine overhead figures.
    seconds: float = 0.0


def record_files(rec: dict[str, Any]) -> list[str]:
    """Relative paths of the files a record names (delivered image, mask, overlays)."""
    names = [rec.get("output"), rec.get("mask"), *(rec.get("overlays") or {}).values()]
    return [n for n in names if isinstance(n, str)]


def thread_env(threads: int) -> dict[str, str]:
    """Environment that sizes the BLAS/OpenMP pools of a process started with it."""
    return dict.fromkeys(THREAD_ENV, str(int(threads)))


#: Settings read from the environment that a worker on another machine must see as the driver does.
FORWARDED_ENV = ("VEIL_SCORING",)


def forwarded_env() -> dict[str, str]:
    """The driver's :data:`FORWARDED_ENV` variables that are set (local workers inherit them anyway)."""
    return {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}


def set_threads(threads: int | None) -> None:
    """Size this process's numeric thread pools: torch's (now, or from ``OMP_NUM_THREADS`` when it
    is imported later), and the BLAS/OpenMP pools that
    numpy and scipy loaded (through ``threadpoolctl`` when installed; a process started with
    :func:`thread_env` has them sized from the start)."""
    if not threads:
        return
    os.environ.update(thread_env(threads))
    # torch is imported only when an image needs gradients; it sizes its pool from
    # OMP_NUM_THREADS when it loads, so it need not be imported here just to be sized.
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(threads))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - the environment set at spawn covers it
        return
    threadpool_limits(limits=int(threads))


class Worker:
    """One loaded pipeline that turns :class:`ScanItem` s into :class:`Outcome` s.

    Files are encoded into a private scratch folder and read back, so the bytes are exactly
    those :class:`veil.output.ResultWriter` writes in a plain scan.

    Examples
    --------
    >>> w = Worker(options)  # doctest: +SKIP
    >>> w.process(ScanItem(0, "a.png", "a", file="a.png")).records[0]["unsafe"]  # doctest: +SKIP
    False
    """

    def __init__(self, options: ScanOptions, *, threads: int | None = None, background: bool = False) -> None:
        set_threads(threads)
        from veil.output import ResultWriter
        from veil.pipeline import Safeguarder
        from veil.scan import BackgroundWriter

        self.options = options
        self.sg = Safeguarder(options.config)
        self._scratch = tempfile.mkdtemp(prefix="veil-worker-")
        # Removed by close(), when the worker is collected, or at the latest when its process
        # exits normally: the process pool's and Ray's workers are never closed explicitly. A process
        # killed outright (SIGKILL, ray.kill) leaves it behind, in the temporary folder.
        self._remove_scratch = weakref.finalize(self, shutil.rmtree, self._scratch, ignore_errors=True)
        self.writer = ResultWriter(self._scratch, overlays=options.overlays)
        self._background = BackgroundWriter(self.writer) if background else None

    def process(self, item: ScanItem) -> Outcome:
        """Safeguard one item; never raises for a bad input (see :func:`veil.scan.scan_file`)."""
        return self.start(item)()

    def start(self, item: ScanItem) -> Callable[[], Outcome]:
        """Safeguard one item and return what finishes it: with ``background=True`` its files
        are still being encoded on a writer thread (so the next item can start), and calling
        the result waits for them."""
        from veil.errors import VeilError
        from veil.output import error_record
        from veil.scan import scan_file

        t0 = time.perf_counter()
        try:
            source = item.source()
        except (OSError, VeilError) as exc:  # an unreadable object-store file: a record, not a crash
            records: list[Any] = [error_record(item.path, f"cannot read file: {exc}")]
        else:
            records = scan_file(self.sg, source, PurePosixPath(item.stem), self._background or self.writer,
                                display_path=item.path, max_frames=self.options.max_frames,
                                keep_metadata=self.options.keep_metadata)

        def finish() -> Outcome:
            out = Outcome(item.index, [])
            root = Path(self._scratch)
            for r in records:
                rec = r if isinstance(r, dict) else r.get()
                rec["settings_hash"] = self.options.settings_hash
                for rel in record_files(rec):
                    f = root / rel
                    out.files[rel] = f.read_bytes()
                    f.unlink()
                out.records.append(rec)
            out.seconds = time.perf_counter() - t0
            return out

        return finish

    def close(self) -> None:
        if self._background is not None:
            self._background.close()
        self._remove_scratch()


@runtime_checkable
class Engine(Protocol):
    """Runs workers over items and yields their outcomes in input order.

    Implementations: :class:`veil.engines.local.LocalEngine` (this process),
    :class:`veil.engines.process.ProcessEngine` (a pool of processes) and
    :class:`veil.engines.ray.RayEngine` (Ray Data ``map_batches`` on an actor pool).
    """

    name: str

    def run(self, items: Iterable[ScanItem], options: ScanOptions) -> Iterator[Outcome]:
        ...
