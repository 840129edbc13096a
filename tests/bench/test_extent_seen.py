"""``bench/extent.py run --by-seen``: whether the classifiers see each planted object on its own."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest


@pytest.fixture
def bench(extent_bench):
    return extent_bench


class _RedOnly:
    """A stand-in Safeguarder whose one model flags an image exactly when it shows red pixels (a red object
    it sees, a blue one it is blind to); hidden pixels are grey (the ``fill`` style)."""

    config = SimpleNamespace(style="fill", style_options={})
    thresholds = np.array([0.5])

    def __init__(self) -> None:
        self.seen: list[int] = []

    def unsafe_scores(self, images):
        self.seen.append(len(images))
        red = [((im[..., 0] > 200) & (im[..., 1] < 60) & (im[..., 2] < 60)).sum() for im in images]
        return np.array([[0.95 if r >= 20 else 0.05] for r in red])


def _scene():
    img = np.full((64, 64, 3), 120, np.uint8)
    red, blue = np.zeros((64, 64), bool), np.zeros((64, 64), bool)
    red[8:20, 8:20] = True
    blue[40:56, 40:56] = True
    img[red] = (230, 20, 20)
    img[blue] = (20, 20, 230)
    objects = [{"kind": "bomb", "band": False, "parts": {"body": red}},
               {"kind": "blade", "band": False, "parts": {"blade": blue}},
               {"kind": "bomb", "band": False, "parts": {}}]  # (drawn wholly under another: no pixels)
    return img, objects


def test_object_seen_tells_the_object_the_model_sees_from_the_one_it_is_blind_to(bench):
    img, objects = _scene()
    sg = _RedOnly()
    ev = bench.object_seen(sg, img, objects)
    assert sg.seen == [3]  # one batch: everything hidden, then each object alone in sight
    assert ev[2] is None
    red, blue = ev[0], ev[1]
    lift = 2 * float(np.log(0.95 / 0.05))  # logit(0.95) - logit(0.05); logit(0.5) = 0
    assert red["seen"] and red["alone"] == pytest.approx(lift / 2) and red["drop"] == pytest.approx(lift)
    assert not blue["seen"] and blue["alone"] < 0 and blue["drop"] == pytest.approx(0.0)


def test_seen_rows_keep_the_images_with_an_unseen_object_apart(bench):
    rest = {"verified": True, "depth": 1, "area": 0.1, "ratio": 1.0, "precision": 1.0, "seconds": 1.0, "evaluated": 9}
    per = [{"found": True, "recall": 1.0, "all_seen": True, **rest},
           {"found": True, "recall": 0.6, "all_seen": True, **rest},
           {"found": True, "recall": 0.2, "all_seen": False, **rest},
           {"found": True, "recall": 0.9, **rest},  # (no objects recorded: not counted)
           {"found": False, "seconds": 1.0, "evaluated": 3}]
    assert bench.seen_rows("m", "object", per) == [
        "| m | object | 3 | 2 | 0.800 | 100 % | 50 % | 1 | 0.200 | 0 % |"]
    assert bench.seen_rows("m", "object", per[3:]) == []
    m = bench.summarize(per)
    assert m["n_seen"] == 2 and m["recall_seen"] == pytest.approx(0.8) and m["recall_50_seen"] == 1.0
    only_seen = bench.seen_rows("m", "minimal", per[:2])
    assert only_seen == ["| m | minimal | 2 | 2 | 0.800 | 100 % | 50 % | 0 | – | – |"]
