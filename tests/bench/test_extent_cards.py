"""``bench/extent.py cards``: the same images under several cards, whole, with each card's attribution."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def bench(extent_bench):
    return extent_bench


def _item():
    img = np.full((40, 60, 3), 120, np.uint8)
    gt = np.zeros((40, 60), bool)
    gt[10:20, 10:20] = True
    return {"id": "7-000", "image": img, "mask": gt}


class _Stand:
    """A stand-in Safeguarder: hides ``hide`` (None: finds no counterfactual and obscures everything)."""

    def __init__(self, hide, unsafe=True):
        self.hide, self.unsafe = hide, unsafe

    def run(self, image):
        mask = np.ones(image.shape[:2], bool) if self.hide is None else self.hide
        return SimpleNamespace(image=image, mask=mask if self.unsafe else np.zeros_like(mask), unsafe=self.unsafe,
                               attribution=np.linspace(0, 1, 6 * 4, dtype=np.float32).reshape(4, 6))


def test_card_panel_scores_what_each_card_hid(bench):
    it = _item()
    half = np.zeros((40, 60), bool)
    half[10:20, 10:15] = True  # half the object
    half[30:40, 40:60] = True  # and 200 pixels off it
    p = bench.card_panel(_Stand(half), it)
    assert p["flagged"] and p["recall"] == pytest.approx(0.5) and p["ratio"] == pytest.approx(250 / 100)
    assert p["attribution"].shape == (40, 60)  # the map at the image's size
    assert p["attribution"][:, -1].mean() > p["attribution"][:, 0].mean()
    whole = bench.card_panel(_Stand(None), it)  # fully obscured: everything hidden
    assert whole["recall"] == 1.0 and whole["ratio"] == pytest.approx(2400 / 100)
    assert not bench.card_panel(_Stand(half, unsafe=False), it)["flagged"]


def test_draw_cards_lays_out_one_row_per_image_and_two_panels_per_card(bench, tmp_path):
    it = _item()
    pan = bench.card_panel(_Stand(it["mask"]), it)
    skip = bench.card_panel(_Stand(it["mask"], unsafe=False), it)
    out = tmp_path / "cards.png"
    bench.draw_cards([it, it], [[pan, skip], [skip, pan]], ["a", "b"], out)
    w, h = Image.open(out).size
    assert (w, h) == (round(2.4 * 5 * 80), round(2.4 * 2 * 80))  # 1 + 2 × 2 columns, 2 rows, 80 dpi
