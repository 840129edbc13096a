"""veil.bench.synthetic: planted demo marks with exact ground-truth masks."""

from __future__ import annotations

import numpy as np
import pytest

from veil.bench.synthetic import (
    HELDOUT_SAMPLES,
    TRAIN_SAMPLES,
    make_composite,
    make_dataset,
    random_crop,
    sample_backgrounds,
)
from veil.errors import InvalidParameterError


def _bg(h: int = 120, w: int = 160) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(60, 120, size=(h, w, 3)).astype(np.uint8)


def test_composite_with_mark():
    bg = _bg()
    before = bg.copy()
    img, mask = make_composite(bg, 3, n_distractors=(0, 0))
    np.testing.assert_array_equal(bg, before)  # input untouched
    assert img.shape == bg.shape and img.dtype == np.uint8
    assert mask.shape == bg.shape[:2] and mask.dtype == bool
    # the mark's pixels changed, pixels away from it did not
    assert np.abs(img.astype(int) - bg).sum(-1)[mask].min() > 0
    ys, xs = np.nonzero(mask)
    diameter = max(np.ptp(ys), np.ptp(xs)) + 1
    assert 0.07 * 120 <= diameter <= 0.27 * 120
    far = np.ones_like(mask)
    far[max(ys.min() - 4, 0) : ys.max() + 5, max(xs.min() - 4, 0) : xs.max() + 5] = False
    np.testing.assert_array_equal(img[far], bg[far])
    # the mark is red: the masked ring pixels are dominated by the red channel
    red = (img[..., 0].astype(int) - img[..., 1]) > 120
    assert (red & mask).sum() > 0.2 * mask.sum()


def test_composite_without_mark_and_distractor_only():
    bg = _bg()
    img, mask = make_composite(bg, 1, with_symbol=False, n_distractors=(0, 0))
    assert not mask.any()
    np.testing.assert_array_equal(img, bg)
    img, mask = make_composite(bg, 1, with_symbol=False, distractor_only=True, n_distractors=(0, 0))
    assert not mask.any() and np.any(img != bg)


def test_composite_is_seeded():
    a = make_composite(_bg(), 7)
    b = make_composite(_bg(), np.random.default_rng(7))
    c = make_composite(_bg(), 8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_composite_accepts_gray_and_float():
    img, mask = make_composite(np.full((64, 64), 0.5, np.float32), 0)
    assert img.shape == (64, 64, 3) and mask.any()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(scale=(0.3, 0.2)), "scale"),
        (dict(scale=(0.0, 0.2)), "scale"),
        (dict(fill_probability=1.5), "fill_probability"),
    ],
)
def test_composite_bad_parameters(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        make_composite(_bg(), 0, **kwargs)


def test_composite_rejects_tiny_background():
    with pytest.raises(InvalidParameterError, match="at least 16"):
        make_composite(np.zeros((8, 8, 3), np.uint8), 0)


def test_make_dataset():
    imgs, labels, masks = make_dataset(10, 0, size=(48, 64), backgrounds=[_bg()])
    assert imgs.shape == (10, 48, 64, 3) and imgs.dtype == np.uint8
    assert labels.tolist().count(1) == 5
    assert masks.shape == (10, 48, 64)
    np.testing.assert_array_equal(masks.reshape(10, -1).any(1), labels == 1)
    again = make_dataset(10, 0, size=(48, 64), backgrounds=[_bg()])
    np.testing.assert_array_equal(imgs, again[0])
    with pytest.raises(InvalidParameterError, match="positive_fraction"):
        make_dataset(2, 0, positive_fraction=2.0, backgrounds=[_bg()])
    with pytest.raises(InvalidParameterError, match="size"):
        make_dataset(2, 0, size=(8, 8), backgrounds=[_bg()])


def test_sample_backgrounds_are_disjoint_and_rgb():
    assert not set(TRAIN_SAMPLES) & set(HELDOUT_SAMPLES)
    photos = sample_backgrounds(["coins", "chelsea"])
    assert all(p.ndim == 3 and p.shape[2] == 3 and p.dtype == np.uint8 for p in photos)
    with pytest.raises(InvalidParameterError, match="no sample image"):
        sample_backgrounds(["not_a_sample"])


def test_random_crop():
    bg = _bg(100, 300)
    crop = random_crop(bg, (40, 50), 0)
    assert crop.shape == (40, 50, 3)
    np.testing.assert_array_equal(crop, random_crop(bg, (40, 50), 0))
