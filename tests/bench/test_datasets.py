"""Dataset loaders on tiny datasets written here in each layout."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from veil.bench.datasets import (
    DatasetError,
    detect_layout,
    load_dataset,
    parse_label,
    source_kind,
)
from veil.errors import InvalidImageError


def _png(color: int, size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), color, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _write(path, color: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_png(color))


def test_imagefolder_flat_and_nested(tmp_path):
    _write(tmp_path / "safe" / "a.png", 10)
    _write(tmp_path / "unsafe" / "b.png", 200)
    _write(tmp_path / "porn" / "c.png", 150)
    _write(tmp_path / "violence" / "safe" / "d.png", 20)
    _write(tmp_path / "violence" / "unsafe" / "e.png", 220)
    ds = load_dataset(tmp_path)
    assert ds.layout == "imagefolder"
    got = {s.id.split("/")[-1]: (s.label, s.category) for s in ds}
    assert got == {"a.png": (0, None), "b.png": (1, None), "c.png": (1, "sexual"),
                   "d.png": (0, "violence"), "e.png": (1, "violence")}
    assert ds.samples[0].load().shape == (8, 8, 3)
    assert ds.summary()["unsafe"] == 3


def test_imagefolder_empty_is_clear(tmp_path):
    (tmp_path / "safe").mkdir()
    with pytest.raises(DatasetError, match="no class folders with images"):
        load_dataset(tmp_path)


def test_manifest_csv_and_jsonl(tmp_path):
    _write(tmp_path / "img" / "x.png", 10)
    _write(tmp_path / "img" / "y.png", 200)
    _write(tmp_path / "mask" / "y.png", 255)
    (tmp_path / "m.csv").write_text(
        "image,label,category,source,mask\nimg/x.png,safe,Sexual,Laion5B,\nimg/y.png,1,Sexual,Lexica,mask/y.png\n")
    ds = load_dataset(tmp_path / "m.csv")
    assert [s.label for s in ds] == [0, 1]
    assert ds.categories() == ["sexual"] and ds.sources() == ["Laion5B", "Lexica"]
    assert ds.samples[0].load_mask() is None
    assert ds.samples[1].load_mask((4, 4)).all()
    (tmp_path / "m.jsonl").write_text(json.dumps({"image": "img/x.png", "label": "unsafe"}) + "\n\n")
    ds2 = load_dataset(tmp_path / "m.jsonl", limit=1)
    assert len(ds2) == 1 and ds2[0].label == 1


def test_manifest_errors(tmp_path):
    (tmp_path / "bad.csv").write_text("image,category\na.png,sexual\n")
    with pytest.raises(DatasetError, match="'label' is missing"):
        load_dataset(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("image,label\na.png,maybe\n")
    with pytest.raises(DatasetError, match="row 1, column 'label'.*'maybe'"):
        load_dataset(tmp_path / "bad2.csv")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope.csv")


def test_unreadable_image_raises_on_load_only(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / "m.csv").write_text("image,label\nbroken.png,unsafe\n")
    ds = load_dataset(tmp_path / "m.csv")
    with pytest.raises(InvalidImageError):
        ds[0].load()


def _unsafebench_table(pa):
    images = [{"bytes": _png(10), "path": "a.png"}, {"bytes": _png(200), "path": "b.png"},
              {"bytes": b"garbage", "path": "c.png"}]
    return pa.table({
        "image": images,
        "safety_label": ["Safe", "Unsafe", "Unsafe"],
        "category": ["Hate", "Sexual", "Public and Personal Health"],
        "source": ["Laion5B", "Lexica", "Lexica"],
    })


def test_unsafebench_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    (tmp_path / "data").mkdir()
    pq.write_table(_unsafebench_table(pa), tmp_path / "data" / "train-00000.parquet")
    assert detect_layout(tmp_path) == "unsafebench"
    ds = load_dataset(tmp_path)
    assert [s.label for s in ds] == [0, 1, 1]
    assert [s.category for s in ds] == ["hate", "sexual", "health"]
    assert ds[1].load()[0, 0, 0] == 200
    assert [source_kind(s.source) for s in ds] == ["real", "ai_generated", "ai_generated"]
    with pytest.raises(InvalidImageError):
        ds[2].load()


def test_unsafebench_missing_column(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"image": [_png(1)], "category": ["Hate"]}), tmp_path / "x.parquet")
    with pytest.raises(DatasetError, match=r"missing column\(s\) \['safety_label'\]"):
        load_dataset(tmp_path / "x.parquet")


def test_unsafebench_save_to_disk_layout_written_with_pyarrow(tmp_path):
    """The on-disk format of ``datasets.Dataset.save_to_disk``, with a ClassLabel column."""
    pa = pytest.importorskip("pyarrow")
    t = _unsafebench_table(pa)
    t = t.set_column(1, "safety_label", pa.array([0, 1, 1], pa.int64()))
    d = tmp_path / "ub" / "test"
    d.mkdir(parents=True)
    with pa.OSFile(str(d / "data-00000-of-00001.arrow"), "wb") as sink, pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    (d / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    (d / "dataset_info.json").write_text(json.dumps(
        {"features": {"safety_label": {"names": ["Safe", "Unsafe"], "_type": "ClassLabel"}}}))
    (tmp_path / "ub" / "dataset_dict.json").write_text(json.dumps({"splits": ["test"]}))
    ds = load_dataset(tmp_path / "ub")
    assert ds.layout == "unsafebench" and [s.label for s in ds] == [0, 1, 1]


def test_unsafebench_single_arrow_file_with_label_classlabel(tmp_path):
    """A lone .arrow file is read; ClassLabel names of a ``label`` column map its integers."""
    pa = pytest.importorskip("pyarrow")
    t = _unsafebench_table(pa).drop_columns(["safety_label"])
    t = t.append_column("label", pa.array([1, 0, 0], pa.int64()))  # class 0 is "Unsafe" here
    f = tmp_path / "ub.arrow"
    with pa.OSFile(str(f), "wb") as sink, pa.ipc.new_file(sink, t.schema) as w:
        w.write_table(t)
    (tmp_path / "dataset_info.json").write_text(json.dumps(
        {"features": {"label": {"names": ["Unsafe", "Safe"], "_type": "ClassLabel"}}}))
    assert detect_layout(f) == "unsafebench"
    assert [s.label for s in load_dataset(f)] == [0, 1, 1]


def test_unsafebench_with_datasets_library(tmp_path):
    datasets = pytest.importorskip("datasets")
    d = datasets.Dataset.from_dict({"image": [{"bytes": _png(5), "path": None}], "safety_label": ["Unsafe"],
                                    "category": ["Violence"], "source": ["Lexica"]})
    d.save_to_disk(str(tmp_path / "hf"))
    ds = load_dataset(tmp_path / "hf")
    assert ds[0].label == 1 and ds[0].category == "violence"


def test_parse_label_and_unknown_layout(tmp_path):
    assert parse_label(True) == 1 and parse_label("SAFE") == 0
    with pytest.raises(DatasetError):
        parse_label(3)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "missing")
