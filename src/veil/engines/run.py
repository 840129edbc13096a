"""A scan: an engine over its inputs, every outcome to the sink, what is done skipped (``--resume``)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from veil.engines.base import Engine, Outcome, ScanOptions
from veil.engines.inputs import ScanInput, input_sha256, scan_items
from veil.output import FolderSink, ParquetSink
from veil.scan import ScanCounts

#: Outcomes handed to the sink's thread and not yet written, at most (each holds its files' bytes).
SINK_WINDOW = 2


@dataclass
class ScanRun:
    """What :func:`run_scan` did: counts of this run's records and inputs skipped as done."""

    counts: ScanCounts
    n_inputs: int
    n_resumed: int
    seconds: float


def run_scan(inputs: Sequence[ScanInput], sink: FolderSink | ParquetSink, engine: Engine, options: ScanOptions, *,
             on_outcome: Callable[[Outcome], None] | None = None,
             on_start: Callable[[int], None] | None = None) -> ScanRun:
    """Run ``engine`` over ``inputs`` and hand every outcome to ``sink``, skipping what is done.

    An input is done when the sink (``--resume``) holds its complete records with the same
    content hash and ``options.settings_hash``. Output names are planned over all inputs, so
    a resumed run names files exactly as the first did.

    The sink writes on one thread of its own, in input order, while the engine works on the
    next inputs (writing files and ``fsync`` ing ``results.jsonl`` otherwise stalls a local
    scan's pipeline for every input); at most :data:`SINK_WINDOW` outcomes wait to be written,
    and every write has finished (or raised here) when this returns.

    Parameters
    ----------
    on_start : callable, optional
        Called with the number of inputs left to process (for a progress bar).
    on_outcome : callable, optional
        Called after each outcome has been written.
    """
    t0 = time.perf_counter()
    skip: set[int] = set()
    if sink.done:
        for i, inp in enumerate(inputs):
            hashes = sink.done.get(inp.path)
            if hashes and (input_sha256(inp), options.settings_hash) in hashes:
                skip.add(i)
    counts = ScanCounts(files=len(inputs) - len(skip))
    if on_start is not None:
        on_start(len(inputs) - len(skip))
    _stems, items = scan_items(inputs, skip=skip)

    def written(future: Future[None], outcome: Outcome) -> None:
        future.result()  # a failed write raises here, in the caller's thread
        for rec in outcome.records:
            counts.add(rec)
        if on_outcome is not None:
            on_outcome(outcome)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="veil-sink") as pool:
        pending: deque[tuple[Future[None], Outcome]] = deque()
        for outcome in engine.run(items, options):
            pending.append((pool.submit(sink.put, outcome.records, outcome.files), outcome))
            while pending and (len(pending) > SINK_WINDOW or pending[0][0].done()):
                written(*pending.popleft())
        while pending:
            written(*pending.popleft())
    return ScanRun(counts, len(inputs), len(skip), time.perf_counter() - t0)
