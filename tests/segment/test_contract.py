"""The segmenter contract, over every entry of the SEGMENTERS registry.

Every segmenter, through :func:`veil.segment.segment`: leaves its inputs untouched, returns an
H×W ``int32`` map whose labels are exactly ``0..n-1``, is repeatable for a given ``rng``, and —
where its registry entry promises it (``connected``) — makes every label one 4-connected region.
On four flat, noisy quadrants every segmenter must keep the quadrants apart (no label spans
two quadrants' interiors) — the known answer.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from veil.segment import SEGMENTERS, segment

# Options per segmenter where the defaults need a model or suit only large photos.
OPTIONS = {
    "slic": {"n_segments": 8},
    "watershed": {"markers": 8},
    "felzenszwalb": {"scale": 100},
}


def _options(name: str) -> dict:
    if name == "sam":
        from tests.segment.test_sam import _tiny_sam

        return {"model": _tiny_sam(), "points_per_side": 4, "pred_iou_thresh": -10.0,
                "stability_score_thresh": 0.0, "min_size": 4}
    return dict(OPTIONS.get(name, {}))


def _quadrants() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    img = np.zeros((48, 64, 3), np.uint8)
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]
    for (ys, xs), c in zip([(slice(0, 24), slice(0, 32)), (slice(0, 24), slice(32, 64)),
                            (slice(24, 48), slice(0, 32)), (slice(24, 48), slice(32, 64))], colours, strict=True):
        img[ys, xs] = c
    img = np.clip(img.astype(int) + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)
    attribution = np.zeros((48, 64), np.float32)
    attribution[:24, :32] = 1.0
    return img, attribution


@pytest.mark.parametrize("name", SEGMENTERS.names())
def test_segmenter_contract(name):
    img, attribution = _quadrants()
    img0, attr0 = img.copy(), attribution.copy()
    img.setflags(write=False)  # a segmenter that writes into its input fails loudly
    opts = _options(name)
    labels = segment(img, name, attribution=attribution, rng=0, **opts)

    assert np.array_equal(img, img0) and np.array_equal(attribution, attr0)
    assert labels.dtype == np.int32 and labels.shape == img.shape[:2]
    n = int(labels.max()) + 1
    assert np.array_equal(np.unique(labels), np.arange(n)), "labels must be exactly 0..n-1"
    assert np.array_equal(labels, segment(img, name, attribution=attribution, rng=0, **opts))
    if SEGMENTERS.get(name).connected:
        four = ndimage.generate_binary_structure(2, 1)
        split = [lab for lab in range(n) if ndimage.label(labels == lab, structure=four)[1] != 1]
        assert not split, f"{name} promises connected labels; labels {split[:5]} are in pieces"


@pytest.mark.parametrize("name", [n for n in SEGMENTERS.names() if n != "sam"])  # sam: random weights
def test_segmenter_keeps_flat_quadrants_apart(name):
    img, attribution = _quadrants()
    labels = segment(img, name, attribution=attribution, rng=0, **_options(name))
    interiors = [labels[4:20, 4:28], labels[4:20, 36:60], labels[28:44, 4:28], labels[28:44, 36:60]]
    owners = [set(np.unique(q).tolist()) for q in interiors]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not owners[i] & owners[j], f"{name}: one label spans quadrants {i} and {j}"


def test_registry_entries_carry_their_metadata():
    for name in SEGMENTERS.names():
        spec = SEGMENTERS.get(name)
        assert spec.default_merge >= 0 and isinstance(spec.connected, bool) and spec.summary
    assert SEGMENTERS.get("bass").default_merge == 12.0
    assert SEGMENTERS.get("slic").default_merge == 0.0
