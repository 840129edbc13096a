"""``bench/extent.py reasons``: which step of the extent hid which pixels, drawn on the whole image."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def bench(extent_bench):
    return extent_bench


def _result() -> tuple[SimpleNamespace, np.ndarray]:
    gt = np.zeros((8, 8), bool)
    gt[2:6, 2:6] = True
    seg = np.zeros((4, 4), np.int32)  # at half size, as the pipeline's working copy
    seg[1:3, 1:3] = 1  # the object (counterfactual)
    seg[0, :] = 2  # a row above it (closure)
    seg[3, 3] = 3  # a region that is not hidden
    res = SimpleNamespace(segments=seg, regions=[SimpleNamespace(id=1, reason="counterfactual"),
                                                 SimpleNamespace(id=2, reason="closure")],
                          mask=np.isin(np.kron(seg, np.ones((2, 2), np.int32)), [1, 2]))
    return res, gt


def test_reason_masks_cover_the_delivered_mask_once_per_reason(bench):
    res, gt = _result()
    masks = bench.reason_masks(res, gt.shape)
    assert list(masks) == ["closure", "counterfactual"]
    assert np.array_equal(masks["counterfactual"], gt)
    assert masks["closure"][:2].all() and masks["closure"].sum() == 16
    assert np.array_equal(masks["closure"] | masks["counterfactual"], res.mask)
    assert not (masks["closure"] & masks["counterfactual"]).any()


def test_outline_is_the_ring_just_outside_the_mask(bench):
    m = np.zeros((9, 9), bool)
    m[3:6, 3:6] = True
    ring = bench.outline(m)
    assert not (ring & m).any() and ring[2, 4] and ring[4, 6] and not ring[2, 2]  # (a cross: no corners)
    wide = np.zeros((900, 20), bool)
    wide[400:500, 5:10] = True
    assert bench.outline(wide)[397, 7] and not bench.outline(wide)[396, 7]  # 900 // 300 = 3 pixels wide
    assert bench.outline(wide, 200)[396, 7]


def test_reason_overlay_tints_each_step_and_outlines_the_truth_and_the_distractors(bench):
    image = np.full((24, 24, 3), 100, np.uint8)
    gt = np.zeros((24, 24), bool)
    gt[6:18, 6:18] = True
    masks = {"counterfactual": np.zeros_like(gt), "closure": np.zeros_like(gt), "someday": np.zeros_like(gt)}
    masks["counterfactual"][8:16, 8:16] = True
    masks["closure"][0:3, :] = True
    masks["someday"][20:, 0:3] = True  # (a reason with no colour of its own: grey)
    looks = np.zeros_like(gt)
    looks[20:23, 15:22] = True
    before = image.copy()
    out = bench.reason_overlay(image, masks, gt, looks, alpha=0.5)
    assert np.array_equal(image, before) and out.dtype == np.uint8 and out.shape == image.shape
    red, yellow = bench.REASON_COLOURS["counterfactual"], bench.REASON_COLOURS["closure"]
    assert tuple(out[10, 10]) == tuple(round(0.5 * 100 + 0.5 * c) for c in red)
    assert tuple(out[1, 1]) == tuple(round(0.5 * 100 + 0.5 * c) for c in yellow)
    assert tuple(out[21, 1]) == (114, 114, 114)
    assert tuple(out[5, 10]) == (0, 255, 0)  # just outside the truth: its outline
    assert tuple(out[19, 18]) == (255, 255, 255)  # just outside a distractor
    assert tuple(out[12, 3]) == (100, 100, 100)  # nothing hidden, no outline: untouched


def test_parse_ids_reads_seed_and_index(bench):
    assert bench.parse_ids(["2024-025", "2025-3", "2024-001"]) == [(2024, 25), (2025, 3), (2024, 1)]
    with pytest.raises(SystemExit, match="SEED-INDEX"):
        bench.parse_ids(["25"])
    with pytest.raises(SystemExit, match="SEED-INDEX"):
        bench.parse_ids(["a-001"])


class _Stand:
    """A stand-in Safeguarder: hides the object as the counterfactual and a strip as closure; ``mode`` "none"
    finds no counterfactual, "safe" flags nothing."""

    def __init__(self, mode="found"):
        self.mode = mode

    def run(self, image):
        h, w = image.shape[:2]
        seg = np.zeros((h // 2, w // 2), np.int32)
        seg[2:6, 2:6], seg[0, :8] = 1, 2
        mask = np.isin(np.kron(seg, np.ones((2, 2), np.int32)), [1, 2])
        return SimpleNamespace(image=image, segments=seg, mask=None if self.mode == "safe" else mask,
                               unsafe=self.mode != "safe", counterfactual_found=self.mode == "found",
                               regions=[SimpleNamespace(id=1, reason="counterfactual"),
                                        SimpleNamespace(id=2, reason="closure")])


def test_draw_reasons_lays_out_a_row_per_image_whatever_the_outcome(bench, tmp_path):
    gt = np.zeros((16, 20), bool)
    gt[4:12, 4:12] = True
    it = {"id": "7-000", "image": np.full((16, 20, 3), 90, np.uint8), "mask": gt, "distractors": np.zeros_like(gt)}
    out = tmp_path / "reasons.png"
    bench.draw_reasons(_Stand(), [it], "t", out, dpi=50)
    w1, h1 = Image.open(out).size
    assert (w1, h1) == (round(7.2 * 50), round(3.6 * 50))
    bench.draw_reasons(_Stand(), [it, {**it, "id": "7-001"}, {**it, "id": "7-002"}], "t", out, dpi=50)
    assert Image.open(out).size == (w1, 3 * h1)


def test_draw_reasons_titles_no_counterfactual_and_not_flagged(bench, tmp_path, monkeypatch):
    import matplotlib.axes

    gt = np.zeros((16, 20), bool)
    gt[4:12, 4:12] = True
    it = {"id": "7-000", "image": np.full((16, 20, 3), 90, np.uint8), "mask": gt}
    titles = []
    real = matplotlib.axes.Axes.set_title
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", lambda ax, t, **k: (titles.append(t), real(ax, t, **k))[1])
    for mode in ("found", "none", "safe"):
        bench.draw_reasons(_Stand(mode), [it], "t", tmp_path / f"{mode}.png", dpi=30)
    assert titles[1] == "recall 1.00, area/GT 1.50\n(closure 0.50, counterfactual 1.00)"
    assert titles[3] == "no counterfactual: fully obscured" and titles[5] == "not flagged"
