"""The three engines give the same answer; layouts, worker start errors, Ray as an optional extra."""

from __future__ import annotations

import gc
import sys
import tempfile
from pathlib import Path

import pytest

from tests.engines.conftest import DEMO_CARD, fast_config
from veil.engines import ScanOptions, choose_layout, make_engine
from veil.engines.base import Worker
from veil.engines.inputs import collect_inputs
from veil.engines.run import run_scan
from veil.errors import MissingDependencyError, ModelLoadError, UnknownNameError, VeilError
from veil.output import make_sink
from veil.scan import settings_hash

#: Two unsafe photos and a safe one; a/ and b/ both hold a 01_coffee_mark.png (a name collision).
SMALL_SET = ("a/01_coffee_mark.png", "a/02_chelsea_mark.png", "b/01_coffee_mark.png")


def scan_with(engine, photos: Path, out: Path, config=None, names=SMALL_SET):  # noqa: ANN001, ANN201
    config = config or fast_config()
    options = ScanOptions(config, settings_hash(config))
    sink = make_sink("folder", out)
    try:
        run = run_scan(collect_inputs([photos / n for n in names]), sink, engine, options)
    finally:
        sink.close()
    return run, sink.records()


def comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "timings"} for r in records]


def files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.png"))}


def test_three_engines_same_records_and_bytes(photos, tmp_path, ray_local):
    engines = {"local": make_engine("local", threads=2), "process": make_engine("process", workers=2, threads=1),
               "ray": make_engine("ray", workers=2, actor_cpus=1)}
    results = {name: scan_with(engine, photos, tmp_path / name) for name, engine in engines.items()}
    ref_run, ref = results["local"]
    assert ref_run.counts.images == 3 and ref_run.counts.unsafe == 2  # a real mix, not a trivial set
    assert sum(1 for r in ref if r["depth"]) == 2 and all(r["settings_hash"] for r in ref)
    ref_files = files(tmp_path / "local")
    assert len([f for f in ref_files if f.startswith("images/")]) == 3 and any(f.startswith("overlays/") for f in ref_files)
    for name in ("process", "ray"):
        run, recs = results[name]
        assert comparable(recs) == comparable(ref), name
        assert files(tmp_path / name) == ref_files, name  # byte-identical delivered images, masks, overlays


def test_colliding_names_from_two_folders_get_distinct_outputs(photos, tmp_path):
    names = ("a/01_coffee_mark.png", "b/01_coffee_mark.png", "a/02_chelsea_mark.png", "b/02_chelsea_mark.png")
    _run, recs = scan_with(make_engine("local", threads=1), photos, tmp_path / "o", names=names)
    outputs = [r["output"] for r in recs]
    assert len(set(outputs)) == len(outputs) == 4
    assert len([o for o in outputs if o.startswith("images/01_coffee_mark-")]) == 2  # both got a hash suffix
    by_name: dict[str, list[str]] = {}
    for r in recs:
        by_name.setdefault(Path(r["path"]).name, []).append(r["output"])
    assert all(len(v) == 2 and v[0] != v[1] for v in by_name.values())  # a/x.png and b/x.png both delivered
    for r in recs:
        assert (tmp_path / "o" / r["output"]).is_file() and (tmp_path / "o" / r["mask"]).is_file()


def test_choose_layout():
    assert choose_layout("auto", 0, 0, n_inputs=1000, cpus=2) == ("process", 2, 1)
    assert choose_layout("auto", 0, 0, n_inputs=5, cpus=2) == ("local", 1, 0)
    assert choose_layout("auto", 0, 0, n_inputs=99, cpus=2) == ("local", 1, 0)  # start-up not repaid
    assert choose_layout("auto", 0, 0, n_inputs=100, cpus=2) == ("process", 2, 1)
    assert choose_layout("auto", 3, 0, n_inputs=5, cpus=6) == ("process", 3, 2)
    assert choose_layout("process", 0, 0, n_inputs=5, cpus=4) == ("process", 4, 1)
    assert choose_layout("local", 4, 2, n_inputs=100, cpus=4) == ("local", 1, 2)
    assert choose_layout("ray", 0, 0, n_inputs=100, cpus=4) == ("ray", 4, 0)
    with pytest.raises(UnknownNameError, match="auto, local, process, ray"):
        choose_layout("dask", 0, 0, n_inputs=1)


def test_bad_engine_options_name_the_parameter():
    with pytest.raises(VeilError, match="workers must be at least 1"):
        make_engine("process", workers=0)
    with pytest.raises(UnknownNameError, match="local, process, ray"):
        make_engine("spark")


def test_worker_start_error_reaches_the_driver(photos, tmp_path):
    config = fast_config()
    bad = type(config)(**{**{f: getattr(config, f) for f in config.__dataclass_fields__},
                          "models": (str(tmp_path / "missing.json"),)})
    with pytest.raises(ModelLoadError, match="missing.json"):
        scan_with(make_engine("process", workers=1, threads=1), photos, tmp_path / "o", bad)


def test_workers_remove_their_scratch_folders(photos, tmp_path, monkeypatch):
    # the process pool never closes its workers: their folders go when the worker processes exit
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # read by the spawned worker processes
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # and by this one
    for name, engine in {"local": make_engine("local", threads=1),
                         "process": make_engine("process", workers=2, threads=1)}.items():
        run, recs = scan_with(engine, photos, tmp_path / name)
        assert run.counts.unsafe == 2 and all(r["error"] is None for r in recs), name
        assert not list(scratch.glob("veil-worker-*")), name
    config = fast_config()
    worker = Worker(ScanOptions(config, settings_hash(config)), threads=1)  # as a Ray actor holds one
    folder = Path(worker._scratch)
    assert folder.parent == scratch and folder.is_dir()
    del worker
    gc.collect()
    assert not folder.exists()


def test_ray_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'veil\[ray\]'"):
        make_engine("ray", workers=1)


def test_settings_hash_follows_settings_and_card_content(tmp_path):
    import shutil

    cfg = fast_config()
    h = settings_hash(cfg)
    assert h == settings_hash(fast_config())
    assert h != settings_hash(type(cfg)(**{**cfg.__dict__, "seed": 1}))
    assert h != settings_hash(cfg, max_frames=2)
    card = tmp_path / "model.json"
    shutil.copy(DEMO_CARD, card)
    shutil.copy(DEMO_CARD.parent / "model.pt", tmp_path / "model.pt")
    c2 = type(cfg)(**{**cfg.__dict__, "models": (str(card),)})
    h2 = settings_hash(c2)
    import os

    assert settings_hash(type(cfg)(**{**cfg.__dict__, "models": (os.path.relpath(card),)})) == h2  # path spelling
    (tmp_path / "model.pt").write_bytes(b"retrained")  # same path, other weights: another setting
    assert settings_hash(c2) != h2


def test_ray_actors_get_the_drivers_scoring_switch(monkeypatch):
    """A Ray actor on another machine does not inherit the driver's environment: the settings the
    loaders read from it (``VEIL_SCORING``) travel in the actors' ``runtime_env``, only when set."""
    from veil.engines.base import forwarded_env

    monkeypatch.delenv("VEIL_SCORING", raising=False)
    assert "VEIL_SCORING" not in forwarded_env()
    monkeypatch.setenv("VEIL_SCORING", "torch")
    assert forwarded_env()["VEIL_SCORING"] == "torch"
