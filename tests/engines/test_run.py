"""run_scan hands outcomes to the sink on a thread of its own: order, completion and errors."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from veil.engines import Outcome
from veil.engines.inputs import ScanInput
from veil.engines.run import SINK_WINDOW, run_scan


class ListEngine:
    """Yields one safe record per item, in order; ``fail_at`` raises instead of that item."""

    name = "list"

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at

    def run(self, items, options):
        for item in items:
            if item.index == self.fail_at:
                raise RuntimeError(f"engine broke at {item.index}")
            yield Outcome(item.index, [{"path": item.path, "output": f"images/{item.stem}.png", "unsafe": False}],
                          {f"images/{item.stem}.png": b"png"})


class SlowSink:
    """Records what was put, from which thread; ``fail_at`` raises on that put."""

    done: dict = {}

    def __init__(self, fail_at: int | None = None) -> None:
        self.put_paths: list[str] = []
        self.threads: set[str] = set()
        self.fail_at = fail_at
        self.lock = threading.Lock()

    def put(self, records, files):
        self.threads.add(threading.current_thread().name)
        if len(self.put_paths) == self.fail_at:
            raise OSError("disk full")
        threading.Event().wait(0.01)  # a slow write: the engine runs ahead of it
        with self.lock:
            self.put_paths.append(records[0]["path"])


def _inputs(n: int) -> list[ScanInput]:
    return [ScanInput(key=f"/in/{i}.png", rel=Path(f"{i}.png"), path=f"/in/{i}.png", file=f"/in/{i}.png")
            for i in range(n)]


def test_outcomes_are_written_in_order_off_the_main_thread_before_they_are_reported():
    sink = SlowSink()
    reported: list[tuple[str, int]] = []

    def on_outcome(outcome):
        # reported only once written: the sink already holds this record
        reported.append((outcome.records[0]["path"], len(sink.put_paths)))

    run = run_scan(_inputs(7), sink, ListEngine(), options=None, on_outcome=on_outcome)
    paths = [f"/in/{i}.png" for i in range(7)]
    assert sink.put_paths == paths
    assert [p for p, _ in reported] == paths
    assert all(n_written >= i + 1 for i, (_, n_written) in enumerate(reported))
    assert run.counts.images == 7
    assert sink.threads and threading.current_thread().name not in sink.threads
    assert SINK_WINDOW >= 1


def test_a_failed_write_raises_from_run_scan():
    sink = SlowSink(fail_at=3)
    with pytest.raises(OSError, match="disk full"):
        run_scan(_inputs(8), sink, ListEngine(), options=None)
    assert sink.put_paths == [f"/in/{i}.png" for i in range(3)]


def test_an_engine_error_still_lets_the_submitted_writes_finish():
    sink = SlowSink()
    with pytest.raises(RuntimeError, match="engine broke at 4"):
        run_scan(_inputs(8), sink, ListEngine(fail_at=4), options=None)
    assert sink.put_paths == [f"/in/{i}.png" for i in range(4)]  # everything yielded before reached the sink
