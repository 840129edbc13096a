"""--resume: a killed ``veil scan`` completes its set with every input processed exactly once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.engines.conftest import FAST, ROOT
from veil.output import FolderSink, ParquetSink, ResumeError

pytest.importorskip("pyarrow")


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def veil_scan(*args: str, tmp: Path | None = None) -> subprocess.Popen:
    """``veil scan`` in a subprocess; ``tmp`` is its TMPDIR (a killed scan cannot remove its scratch folder)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if tmp is not None:
        tmp.mkdir(exist_ok=True)
        env["TMPDIR"] = str(tmp)
    return subprocess.Popen([sys.executable, "-m", "veil.cli", "scan", *args, *FAST, "--threads", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_kill_mid_scan_then_resume_processes_each_input_once(photos, tmp_path):
    # a/, b/ and three more copies of a/ under other paths: enough work (15 images) that the kill lands
    # mid-scan even when the lines of the last few images reach the file between two polls
    extra = [tmp_path / "more" / f"c{i}" for i in range(3)]
    for folder in extra:
        shutil.copytree(photos / "a", folder)
    inputs = [photos / "a", photos / "b", *extra]
    n = 6 + 3 * len(extra)
    out = tmp_path / "out"
    results = out / "results.jsonl"
    proc = veil_scan(*map(str, inputs), "--out", str(out), "--engine", "local", tmp=tmp_path / "tmp")
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None and len(lines(results)) < 2:
            time.sleep(0.05)
        assert proc.poll() is None, f"the scan ended before it could be killed:\n{proc.communicate()[0]}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    before = lines(results)
    assert 2 <= len(before) < n
    with open(results, "ab") as fh:  # as if the crash had hit in the middle of a write
        fh.write(b'{"path": "' + before[0]["path"].encode() + b'", "sha256": "half a rec')
    resumed = veil_scan(*map(str, inputs), "--out", str(out), "--engine", "local", "--resume")
    log = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, log
    recs = lines(results)
    assert recs[: len(before)] == before  # earlier records kept as they were
    assert json.loads((out / "run.json").read_text())["n_resumed"] == len(before)
    counts = Counter(r["path"] for r in recs)
    assert len(counts) == n and set(counts.values()) == {1}, counts
    assert all(r["error"] is None and (out / r["output"]).is_file() for r in recs)
    assert len(list((out / "images").rglob("*.png"))) == n and not list(out.rglob("*.part"))
    sink = FolderSink(out, resume=True, settings_hash=recs[0]["settings_hash"])  # a third run: nothing left
    sink.close()
    assert sum(len(v) for v in sink.done.values()) == n


class Crash(Exception):
    pass


class CrashAfter:
    """An engine that dies after ``n`` outcomes, as a killed driver would."""

    name = "crash"

    def __init__(self, inner, n: int) -> None:  # noqa: ANN001
        self.inner, self.n = inner, n

    def run(self, items, options):  # noqa: ANN001, ANN201
        for k, outcome in enumerate(self.inner.run(items, options)):
            if k == self.n:
                raise Crash
            yield outcome


def test_parquet_resume_after_a_crash(photos, tmp_path):
    from tests.engines.conftest import fast_config
    from veil.engines import ScanOptions, make_engine
    from veil.engines.inputs import collect_inputs
    from veil.engines.run import run_scan
    from veil.scan import settings_hash

    cfg = fast_config()
    options = ScanOptions(cfg, settings_hash(cfg))
    inputs = collect_inputs([photos / "a", photos / "b"])
    engine = make_engine("local", threads=1)
    sink = ParquetSink(tmp_path, rows_per_part=2, settings_hash=options.settings_hash)
    with pytest.raises(Crash):
        run_scan(inputs, sink, CrashAfter(engine, 3), options)  # 3 rows reached the sink: one part of 2
    assert len(sink.parts()) == 1  # the buffered third row is lost with the crash
    sink = ParquetSink(tmp_path, resume=True, rows_per_part=2, settings_hash=options.settings_hash)
    assert sum(len(v) for v in sink.done.values()) == 2
    run = run_scan(inputs, sink, engine, options)
    sink.close()
    assert run.n_resumed == 2 and run.counts.images == 4
    counts = Counter(r["path"] for r in sink.records())
    assert len(counts) == 6 and set(counts.values()) == {1}, counts


def test_partial_trailing_line_is_cut_and_never_counts(tmp_path):
    good = {"path": "a.png", "sha256": "aa", "settings_hash": "h", "output": "images/a.png"}
    (tmp_path / "results.jsonl").write_text(json.dumps(good) + "\n" + '{"path": "b.png", "sha256": "bb", "settings')
    sink = FolderSink(tmp_path, resume=True, settings_hash="h")
    sink.put([{**good, "path": "b.png", "sha256": "bb"}], {"images/b.png": b"png"})
    sink.close()
    assert sink.done == {"a.png": {("aa", "h")}}
    assert [r["path"] for r in sink.records()] == ["a.png", "b.png"]  # no glued half line
    assert (tmp_path / "images" / "b.png").read_bytes() == b"png"


def test_incomplete_multi_frame_file_is_redone(tmp_path):
    frames = [{"path": "anim.gif", "sha256": "cc", "settings_hash": "h", "frame": k, "n_frames": 3} for k in range(3)]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in frames[:2]))
    sink = FolderSink(tmp_path, resume=True, max_frames=64, settings_hash="h")
    sink.close()
    assert sink.done == {} and sink.records() == []  # two of three frames: not done, dropped
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in frames[:2]))
    sink = FolderSink(tmp_path, resume=True, max_frames=2, settings_hash="h")  # only 2 frames judged
    sink.close()
    assert sink.done == {"anim.gif": {("cc", "h")}}


def test_resume_with_other_settings_is_refused(tmp_path):
    (tmp_path / "results.jsonl").write_text(json.dumps({"path": "a", "sha256": "a", "settings_hash": "old"}) + "\n")
    with pytest.raises(ResumeError, match="other settings.*old.*new --out"):
        FolderSink(tmp_path, resume=True, settings_hash="new")
    FolderSink(tmp_path, resume=False, settings_hash="new").close()  # without --resume: starts afresh
    assert (tmp_path / "results.jsonl").read_text() == ""
