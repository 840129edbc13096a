"""Deliver exactly what was judged: every way unsafe content used to leave Veil, as a test.

Each hostile file is generated here (tests/hostile.py). The classifier flags magenta; after a
scan, every delivered file is decoded from disk, frame by frame, and must show none.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.hostile import (
    Garbage,
    MagentaClassifier,
    calm,
    corpus,
    encode,
    magenta_pixels,
    with_patch,
)
from veil.classify import CLASSIFIERS
from veil.cli import app
from veil.image import load_image, sha256_file
from veil.pipeline import SafeguardConfig, Safeguarder

runner = CliRunner()
FAST = ["--segmentation", "felzenszwalb", "--rationale", "none", "--no-overlays", "--no-report"]


@pytest.fixture()
def magenta(monkeypatch):
    monkeypatch.setitem(CLASSIFIERS._items, "magenta", lambda **kw: MagentaClassifier())
    return "magenta"


def scan(folder: Path, out: Path, *args: str) -> list[dict]:
    res = runner.invoke(app, ["scan", str(folder), "--out", str(out), "--model", "magenta", *FAST, *args])
    assert res.exit_code == 0, res.output
    return [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]


def delivered_files_are_clean(out: Path, records: list[dict]) -> None:
    """Every file under images/ has exactly one record, is a single-frame RGB PNG without
    metadata, and shows no magenta; every record's output exists."""
    outputs = [r["output"] for r in records if r["output"]]
    assert len(outputs) == len(set(outputs))
    on_disk = sorted(p.relative_to(out).as_posix() for p in (out / "images").rglob("*") if p.is_file())
    assert on_disk == sorted(outputs)
    for rel in outputs:
        with Image.open(out / rel) as im:
            assert im.format == "PNG" and im.mode == "RGB"
            assert getattr(im, "n_frames", 1) == 1
            assert not im.getexif() and "icc_profile" not in im.info
            assert magenta_pixels(np.asarray(im)) <= 2, rel


def test_hidden_content_never_leaves(magenta, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    files = corpus()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    out = tmp_path / "out"
    records = scan(folder, out)
    delivered_files_are_clean(out, records)
    by_file: dict[str, list[dict]] = {}
    for r in records:
        by_file.setdefault(Path(r["path"]).name, []).append(r)
    assert set(by_file) == set(files)
    for name, recs in by_file.items():
        assert all(r["error"] is None for r in recs), (name, recs)
        assert all(r["sha256"] == sha256_file(folder / name) for r in recs)
    # every frame of a multi-frame file is judged: frame 1 holds the unsafe patch and is obscured
    for name in ("anim.gif", "anim.png", "anim.webp", "pages.tif", "stereo.mpo"):
        recs = sorted(by_file[name], key=lambda r: r["frame"])
        assert [r["frame"] for r in recs] == [0, 1] and all(r["n_frames"] == 2 for r in recs)
        assert not recs[0]["unsafe"] and recs[1]["unsafe"], name
        assert recs[1]["counterfactual_found"] or recs[1]["fail_closed"]
    # the thumbnail, the trailing PNG and the pixels under alpha 0 were never shown to anyone:
    # the delivered files are the judged first frames, re-encoded, nothing else
    for name in ("thumb.jpg", "trailing.jpg", "alpha.png"):
        (rec,) = by_file[name]
        assert not rec["unsafe"]
        np.testing.assert_array_equal(np.asarray(Image.open(out / rec["output"])), load_image(folder / name))
    assert "exif_thumbnail" in by_file["thumb.jpg"][0]["metadata"]["found"]
    assert "alpha" in by_file["alpha.png"][0]["metadata"]["found"]
    trailing = (out / by_file["trailing.jpg"][0]["output"]).read_bytes()
    assert trailing.count(b"IEND") == 1 and b"\xff\xd8\xff" not in trailing


def test_max_frames_limits_what_is_judged_and_delivered(magenta, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "anim.gif").write_bytes(corpus()["anim.gif"])
    out = tmp_path / "out"
    records = scan(folder, out, "--max-frames", "1")
    assert [r["frame"] for r in records] == [0]
    assert "not judged, not delivered" in records[0]["note"]
    assert sorted(p.name for p in (out / "images").iterdir()) == ["anim.png"]


def test_metadata_stripped_by_default_and_kept_on_request(magenta, tmp_path):
    from tests.hostile import exif_with_thumbnail

    folder = tmp_path / "in"
    folder.mkdir()
    safe = calm()
    thumb = encode(with_patch(calm((24, 32))), "JPEG")
    (folder / "gps.jpg").write_bytes(encode(safe, "JPEG", quality=95, exif=exif_with_thumbnail(thumb),
                                            icc_profile=b"\0" * 128))
    rec = scan(folder, tmp_path / "a")[0]
    assert {"exif", "gps", "exif_thumbnail"} <= set(rec["metadata"]["found"]) and rec["metadata"]["kept"] == []
    with Image.open(tmp_path / "a" / rec["output"]) as im:
        assert not im.getexif() and "icc_profile" not in im.info

    rec = scan(folder, tmp_path / "b", "--keep-metadata")[0]
    assert set(rec["metadata"]["kept"]) == {"exif", "icc"}
    data = (tmp_path / "b" / rec["output"]).read_bytes()
    assert b"\xff\xd8\xff" not in data  # the thumbnail (an unjudged image) is dropped even then
    with Image.open(tmp_path / "b" / rec["output"]) as im:
        exif = im.getexif()
        assert exif.get(0x010F) == "Veil" and exif.get_ifd(0x8825).get(1) == "N"  # make and GPS kept
        assert im.info.get("icc_profile") == b"\0" * 128


def test_output_names_are_unique_and_every_file_has_one_record(magenta, tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    imgs = {name: calm(seed=i) for i, name in enumerate(
        ["photo.1.png", "photo.2.png", "..png", "a.jpg", "a.png", "sub/a.png", "we ird#name.png", "Case.png"])}
    imgs["case.PNG"] = with_patch(calm(seed=99))
    for name, arr in imgs.items():
        fmt = "JPEG" if name.endswith(".jpg") else "PNG"
        (folder / name).write_bytes(encode(arr, fmt, **({"quality": 100} if fmt == "JPEG" else {})))
    out = tmp_path / "out"
    records = scan(folder, out)
    assert len(records) == len(imgs) and all(r["error"] is None for r in records)
    delivered_files_are_clean(out, records)
    for rec in records:
        src = Path(rec["path"])
        if not rec["unsafe"]:
            np.testing.assert_array_equal(np.asarray(Image.open(out / rec["output"])), load_image(src))
    names = {Path(r["path"]).name: r["output"] for r in records}
    assert names["photo.1.png"] != names["photo.2.png"]
    assert names["..png"] == "images/_.png"
    # a second run on the same inputs gives the same names, whatever order they come in
    again = {Path(r["path"]).name: r["output"] for r in scan(folder, tmp_path / "again")}
    assert again == names


def test_folder_scan_decides_by_content_and_accounts_for_every_file(magenta, tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    folder = tmp_path / "in"
    folder.mkdir()
    unsafe = with_patch(calm())
    pillow_heif.from_pillow(Image.fromarray(unsafe)).save(folder / "phone.heic", quality=90)
    (folder / "web.avif").write_bytes(encode(unsafe, "AVIF", quality=90))
    (folder / "noextension").write_bytes(encode(unsafe, "PNG"))
    (folder / "misnamed.txt").write_bytes(encode(calm(), "PNG"))
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.jpg").write_bytes(encode(calm(), "JPEG")[:200])
    out = tmp_path / "out"
    res = runner.invoke(app, ["scan", str(folder), "--out", str(out), "--model", "magenta", *FAST])
    assert res.exit_code == 0, res.output
    records = {Path(json.loads(x)["path"]).name: json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()}
    assert set(records) == {"phone.heic", "web.avif", "noextension", "misnamed.txt", "notes.txt", "broken.jpg"}
    for name in ("phone.heic", "web.avif", "noextension"):
        assert records[name]["unsafe"] and records[name]["output"], name
    assert not records["misnamed.txt"]["unsafe"] and records["misnamed.txt"]["output"]
    assert records["notes.txt"]["skipped"] is True and records["notes.txt"]["output"] is None
    assert "not a recognised image" in records["notes.txt"]["error"]
    assert records["broken.jpg"]["error"] and not records["broken.jpg"].get("skipped")
    delivered_files_are_clean(out, list(records.values()))
    summary = " ".join(res.output.split())
    assert "6 files · 4 images" in summary and "1 skipped (not images) · 1 failed" in summary


@pytest.mark.parametrize("garbage, why", [
    (lambda p: np.full_like(p, np.nan), "non-finite"),
    (lambda p: np.full_like(p, -np.inf), "non-finite"),
    (lambda p: p - 1.0, "outside [0, 1]"),
    (lambda p: p * 3.0, "outside [0, 1]"),
    (lambda p: p[:, :1], "shape"),
    (lambda p: p[:0], "shape"),
    (lambda p: "garbage", "not numbers"),
])
@pytest.mark.parametrize("call", [0, 1, None], ids=["verdict", "search", "always"])
def test_untrustworthy_scores_fail_closed(garbage, why, call):
    unsafe = with_patch(calm())
    clf = Garbage(garbage, bad=call)
    sg = Safeguarder(SafeguardConfig(models=(clf,), segmentation="felzenszwalb", rationale=None),
                     classifiers=[clf])
    res = sg.run(unsafe)
    assert res.fail_closed and not res.counterfactual_found
    assert res.mask.all() and magenta_pixels(res.image) == 0
    assert why in res.error and "'garbage'" in res.error


def test_safe_verdict_from_a_broken_model_is_not_trusted():
    """A NaN score used to compare as 'not above the threshold', i.e. safe."""
    clf = Garbage(lambda p: np.full_like(p, np.nan), bad=0)
    sg = Safeguarder(SafeguardConfig(models=(clf,), rationale=None), classifiers=[clf])
    res = sg.run(calm())
    assert res.fail_closed and res.error and "non-finite" in res.error


def test_search_claiming_success_without_regions_fails_closed(monkeypatch):
    """A strategy that says 'found' with nothing selected, and a re-check that returns NaN."""
    from veil.counterfactual import SEARCHES
    from veil.counterfactual.search import SearchOutcome

    def liar(order, evaluate, thresholds, **kw):
        return SearchOutcome(True, (), np.zeros(len(thresholds)), 0)

    monkeypatch.setitem(SEARCHES._items, "liar", liar)
    clf = Garbage(lambda p: np.full_like(p, np.nan), bad=1)  # the verdict is sound, the re-check NaN
    sg = Safeguarder(SafeguardConfig(models=(clf,), search="liar", segmentation="felzenszwalb", rationale=None),
                     classifiers=[clf])
    res = sg.run(with_patch(calm()))
    assert res.fail_closed and not res.counterfactual_found and magenta_pixels(res.image) == 0
    # and with an honest re-check: a found-but-empty counterfactual is still refused
    clf = MagentaClassifier()
    sg = Safeguarder(SafeguardConfig(models=(clf,), search="liar", segmentation="felzenszwalb", rationale=None),
                     classifiers=[clf])
    res = sg.run(with_patch(calm()))
    assert res.fail_closed and "without any region" in res.error


def test_large_images_are_searched_on_a_working_copy():
    """No full-resolution image per candidate: the search only ever classifies the working copy."""
    big = with_patch(calm((1500, 2000)), (500, 600, 200, 300))
    before = big.copy()
    clf = MagentaClassifier()
    sg = Safeguarder(SafeguardConfig(models=(clf,), segmentation="felzenszwalb", rationale=None, search_size=400),
                     classifiers=[clf])
    res = sg.run(big)
    assert res.counterfactual_found and not res.fail_closed
    assert res.image.shape == big.shape and res.mask.shape == big.shape[:2]
    assert magenta_pixels(res.image) <= 2
    np.testing.assert_array_equal(big, before)  # the caller's array is never written to
    assert not np.shares_memory(res.image, big)
    full = [s for batch in clf.calls for s in batch if s[:2] == big.shape[:2]]
    assert len(full) == 2  # the verdict on the original and the re-check of the delivered image
    work = [s for batch in clf.calls for s in batch if s[:2] != big.shape[:2]]
    assert work and all(max(s[:2]) <= 400 for s in work)
    x, y, w, h = res.regions[0].bbox  # boxes are in the delivered image's pixels
    assert x + w <= 2000 and y + h <= 1500 and w > 100
