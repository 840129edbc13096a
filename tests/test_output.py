"""veil.output: results.jsonl records, portable output names and the files a result leaves behind."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from veil.output import RECORD_KEYS, ResultWriter, error_record, overlay_regions, plan_names, record
from veil.types import Detection, ModelOutput, Region, Result


def _result(unsafe: bool = True) -> Result:
    before = [ModelOutput("m", {"safe": 0.2, "unsafe": 0.8}, 0.8, True, 0.5, ("unsafe",),
                          [Detection("unsafe", 0.8, (1, 2, 3, 4))])]
    after = [ModelOutput("m", {"safe": 0.9, "unsafe": 0.1}, 0.1, False, 0.5, ("unsafe",))]
    mask = np.zeros((8, 10), bool)
    mask[2:4, 3:6] = True
    image = np.full((8, 10, 3), 90, np.uint8)
    return Result(unsafe=unsafe, scores={"safe": 0.2, "unsafe": 0.8}, models=before, counterfactual_found=True,
                  depth=1, obfuscated_fraction=float(mask.mean()), scores_after={"safe": 0.9, "unsafe": 0.1},
                  models_after=after, fail_closed=False, error=None, image=image, mask=mask,
                  attribution=np.linspace(0, 1, 80, dtype=np.float32).reshape(8, 10),
                  segments=np.repeat(np.arange(10)[None] // 5, 8, axis=0).astype(np.int32),
                  regions=[Region(1, 0, 0.7, 0.075, (3, 2, 3, 2), (0.45, 0.375))], n_evaluated=5, seed=3,
                  timings={"search": 0.123456}, settings={"extent": "object"})


def test_record_keys_come_first_in_order():
    rec = record(_result(), "in/a.jpg", "images/a.png", "masks/a.png")
    assert tuple(rec)[: len(RECORD_KEYS)] == RECORD_KEYS
    assert rec["obfuscated_fraction"] == round(6 / 80, 6) and rec["depth"] == 1
    assert rec["detections"] == [{"label": "unsafe", "score": 0.8, "box": [1, 2, 3, 4], "model": "m"}]
    assert rec["models_after"] == [{"name": "m", "unsafe_score": 0.1, "unsafe": False}]
    assert rec["extent"] == "object" and rec["seed"] == 3 and rec["timings"] == {"search": 0.1235}
    assert "rationale" not in rec
    json.dumps(rec)  # plain JSON


def test_error_record_has_every_key_and_extensions():
    rec = error_record("x.bin", "not an image", skipped=True)
    assert set(RECORD_KEYS) <= set(rec) and rec["error"] == "not an image" and rec["skipped"] is True
    assert rec["output"] is None and rec["scores"] == {} and rec["fail_closed"] is False


def test_plan_names_are_portable_and_unique():
    items = [(Path("in/a.jpg"), Path("a.jpg")), (Path("in/a.png"), Path("a.png")),
             (Path("in/sub dir/b c.1.jpg"), Path("sub dir/b c.1.jpg")), (Path("in/..png"), Path("..png"))]
    stems = plan_names(items)
    assert len({str(s).lower() for s in stems}) == 4
    assert str(stems[0]).startswith("a-") and str(stems[1]).startswith("a-")  # clash → hashed suffix
    assert stems[2] == PurePosixPath("sub_dir/b_c.1")
    assert not str(stems[3]).startswith(".")
    assert plan_names(list(reversed(items))) == list(reversed(stems))  # order does not matter


def test_writer_writes_delivered_image_mask_and_overlays(tmp_path):
    res = _result()
    rec = ResultWriter(tmp_path).write(res, PurePosixPath("a"), "in/a.jpg")
    assert rec["output"] == "images/a.png" and rec["mask"] == "masks/a.png"
    delivered = np.asarray(Image.open(tmp_path / rec["output"]))
    assert np.array_equal(delivered, res.image)
    mask = np.asarray(Image.open(tmp_path / rec["mask"])) > 0
    assert np.array_equal(mask, res.mask)
    assert rec["overlays"] and all((tmp_path / p).is_file() for p in rec["overlays"].values())


def test_writer_without_overlays(tmp_path):
    rec = ResultWriter(tmp_path, overlays=False).write(_result(), PurePosixPath("b"), "b.jpg")
    assert rec["overlays"] == {} and not (tmp_path / "overlays").exists()


def test_overlay_regions_outlines_the_mask_in_red_and_leaves_input():
    img = np.full((8, 10, 3), 90, np.uint8)
    img0 = img.copy()
    mask = np.zeros((8, 10), bool)
    mask[2:6, 2:6] = True
    out = overlay_regions(img, np.zeros((8, 10), np.int32), mask)
    assert np.array_equal(img, img0)
    assert (out[mask] == (230, 30, 30)).all(axis=1).any()
    assert (out[~mask] == 90).all()
