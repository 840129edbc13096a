"""Inputs: CSV/JSONL manifests, Parquet/Arrow tables of image bytes; Parquet output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.engines.conftest import FAST
from veil.bench.datasets import DatasetError
from veil.cli import app
from veil.engines.inputs import collect_inputs, input_sha256

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def invoke(args: list[str]):  # noqa: ANN201
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, ["scan", *args, *FAST, "--engine", "local", "--threads", "1"])
    assert res.exit_code == 0, res.output
    return res


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_csv_and_jsonl_manifests(photos, tmp_path):
    a = sorted((photos / "a").glob("*.png"))
    csv = tmp_path / "m.csv"
    csv.write_text("image,note\n" + "".join(f"{p},x\n" for p in a[:2]) + f"{Path('..') / a[2].relative_to(photos.parent)},y\n")
    jsonl = tmp_path / "sub" / "m.jsonl"
    jsonl.parent.mkdir()
    jsonl.write_text("".join(json.dumps({"image": str(p)}) + "\n" for p in sorted((photos / "b").glob("*.png"))))
    inputs = collect_inputs([csv, jsonl])
    assert len(inputs) == 6 and all(i.file and Path(i.file).is_file() for i in inputs)
    invoke([str(csv), str(jsonl), "--out", str(tmp_path / "o")])
    recs = read_jsonl(tmp_path / "o" / "results.jsonl")
    assert len(recs) == 6 and all(r["error"] is None for r in recs)
    assert len({r["output"] for r in recs}) == 6  # same file names from two folders stay apart
    assert {r["sha256"] for r in recs} == {hashlib.sha256(Path(i.file).read_bytes()).hexdigest() for i in inputs}


def test_manifest_without_image_column_is_refused(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nx.png,1\n")
    with pytest.raises(DatasetError, match="column 'image'"):
        collect_inputs([bad])


def write_table(path: Path, images: list[bytes], *, struct: bool) -> None:
    if struct:
        col = pa.array([{"bytes": b, "path": f"x{i}.png"} for i, b in enumerate(images)],
                       pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    else:
        col = pa.array(images, pa.binary())
    pq.write_table(pa.table({"image": col, "safety_label": ["Safe"] * len(images)}), path)


def test_parquet_input_and_parquet_output(photos, tmp_path):
    images = [p.read_bytes() for p in sorted((photos / "a").glob("*.png"))]
    write_table(tmp_path / "plain.parquet", images, struct=False)
    write_table(tmp_path / "struct.parquet", images[:1] + [b"not an image"], struct=True)
    inputs = collect_inputs([tmp_path / "plain.parquet", tmp_path / "struct.parquet"])
    assert [i.path.rsplit("/", 1)[-1] for i in inputs] == [
        "plain.parquet#0", "plain.parquet#1", "plain.parquet#2", "struct.parquet#0", "struct.parquet#1"]
    assert input_sha256(inputs[1]) == hashlib.sha256(images[1]).hexdigest()

    invoke([str(tmp_path / "plain.parquet"), str(tmp_path / "struct.parquet"), "--out", str(tmp_path / "f")])
    folder = read_jsonl(tmp_path / "f" / "results.jsonl")
    assert [r["sha256"] for r in folder[:4]] == [hashlib.sha256(b).hexdigest() for b in images + images[:1]]
    assert folder[4]["skipped"] is True and folder[4]["output"] is None  # bytes that are not an image

    invoke([str(tmp_path / "plain.parquet"), str(tmp_path / "struct.parquet"), "--out", str(tmp_path / "p"),
            "--format", "parquet"])
    parts = sorted((tmp_path / "p" / "results").glob("part-*.parquet"))
    assert parts and not (tmp_path / "p" / "results.jsonl").exists()
    rows = pa.concat_tables([pq.read_table(p) for p in parts]).to_pylist()
    assert len(rows) == 5
    for row, rec in zip(rows, folder, strict=True):
        full = json.loads(row["record"])
        assert {k: v for k, v in full.items() if k != "timings"} == {k: v for k, v in rec.items() if k != "timings"}
        assert row["path"] == rec["path"] and row["sha256"] == rec.get("sha256")
        if rec["output"]:  # the same bytes as the folder layout delivers
            assert row["image"] == (tmp_path / "f" / rec["output"]).read_bytes()
            assert row["mask"] == (tmp_path / "f" / rec["mask"]).read_bytes()
            if rec["overlays"]:
                assert row["overlay_attribution"] == (tmp_path / "f" / rec["overlays"]["attribution"]).read_bytes()
        else:
            assert row["image"] is None


def test_object_store_uris_are_listed_and_read_by_the_worker(photos, tmp_path):
    # file:// goes through pyarrow.fs exactly as s3:// or gs:// would (no network here)
    uri = (photos / "a").as_uri()
    inputs = collect_inputs([uri])
    assert [i.path for i in inputs] == [p.as_uri() for p in sorted((photos / "a").glob("*.png"))]
    assert input_sha256(inputs[0]) == hashlib.sha256((photos / "a" / "01_coffee_mark.png").read_bytes()).hexdigest()
    invoke([uri, (photos / "b" / "01_coffee_mark.png").as_uri(), "--out", str(tmp_path / "o")])
    recs = read_jsonl(tmp_path / "o" / "results.jsonl")
    assert len(recs) == 4 and all(r["error"] is None and r["path"].startswith("file://") for r in recs)
    assert len({r["output"] for r in recs}) == 4  # a/01_coffee_mark.png and b/01_coffee_mark.png
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, ["scan", uri, "--out", "s3://bucket/out"])  # the folder layout needs a folder
    assert res.exit_code == 2 and "object-store URI: use --format parquet" in res.output


def test_parquet_output_to_an_object_store_uri_and_resume(photos, tmp_path):
    """--format parquet writes through pyarrow.fs to a URI (file:// takes the path s3:// or gs:// would)."""
    out = (tmp_path / "store" / "veil-out").as_uri()
    invoke([str(photos / "a"), "--out", out, "--format", "parquet"])
    parts = sorted((tmp_path / "store" / "veil-out" / "results").glob("*"))
    assert [p.name for p in parts] == ["part-00000.parquet"]  # no temporary name left behind
    rows = pq.read_table(parts[0]).to_pylist()
    assert len(rows) == 3 and all(r["error"] is None for r in rows)
    assert all(r["image"][:8] == b"\x89PNG\r\n\x1a\n" for r in rows)
    run = json.loads((tmp_path / "store" / "veil-out" / "run.json").read_text())
    assert run["format"] == "parquet" and run["n_files"] == 3
    res = invoke([str(photos / "a"), "--out", out, "--format", "parquet", "--resume"])
    assert "3 already done" in res.output
    assert len(list((tmp_path / "store" / "veil-out" / "results").glob("*.parquet"))) == 1  # nothing redone
    from veil.output import ParquetSink

    assert len(ParquetSink(out, resume=True).records()) == 3
