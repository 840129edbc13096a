"""grow_to_object: known answers on a disc, a thin bar, several pieces, and its bounds."""

from __future__ import annotations

import numpy as np
import pytest

from veil.errors import InvalidParameterError
from veil.segment.grabcut import grow_to_object


def textured(size: int = 160, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([100 + 50 * np.sin(xx / 9.0), 150 + 30 * np.cos(yy / 7.0), 90 + 0 * xx], axis=-1)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def test_a_dark_disc_is_grown_from_a_small_piece_on_its_rim():
    img = textured()
    yy, xx = np.mgrid[0:160, 0:160]
    disc = (yy - 90) ** 2 + (xx - 80) ** 2 <= 28**2
    img[disc] = (25, 25, 35)
    seed = np.zeros_like(disc)
    seed[58:70, 74:86] = True  # over the disc's top edge: part disc, part background
    out = grow_to_object(img, seed)
    assert (out & disc).sum() >= 0.9 * disc.sum()
    assert (out & ~disc & ~seed).sum() <= 0.1 * disc.sum()
    assert out[seed].all()  # only ever adds


def test_a_thin_bar_is_followed_pixel_fine():
    img = textured(seed=1)
    bar = np.zeros(img.shape[:2], bool)
    bar[40:44, 20:140] = True  # 4 px wide, 120 px long
    img[bar] = (235, 235, 245)
    seed = np.zeros_like(bar)
    seed[38:46, 20:40] = True  # one end of it
    out = grow_to_object(img, seed)
    assert (out & bar).sum() >= 0.9 * bar.sum()
    assert (out & ~bar & ~seed).sum() <= 1.0 * bar.sum()


def test_each_piece_finds_its_own_object_and_leaves_the_rest():
    img = textured(seed=2)
    yy, xx = np.mgrid[0:160, 0:160]
    a = (yy - 40) ** 2 + (xx - 40) ** 2 <= 15**2
    b = (yy - 115) ** 2 + (xx - 115) ** 2 <= 15**2
    other = (yy - 40) ** 2 + (xx - 120) ** 2 <= 15**2  # the same colour, not seeded
    for m in (a, b, other):
        img[m] = (30, 30, 40)
    seed = np.zeros_like(a)
    seed[25:31, 36:44] = True
    seed[100:106, 111:119] = True
    out = grow_to_object(img, seed)
    assert (out & a).sum() >= 0.9 * a.sum() and (out & b).sum() >= 0.9 * b.sum()
    assert not (out & other).any()


def test_an_object_larger_than_max_region_is_not_taken():
    img = textured(240, seed=3)
    square = np.zeros(img.shape[:2], bool)
    square[70:170, 70:170] = True  # 17 % of the image
    img[square] = (30, 30, 40)
    seed = np.zeros_like(square)
    seed[66:78, 110:125] = True
    np.testing.assert_array_equal(grow_to_object(img, seed, max_region=0.15), seed)
    grown = grow_to_object(img, seed, max_region=0.3)
    assert (grown & square).sum() >= 0.9 * square.sum()


def test_empty_seed_and_bad_input():
    img = textured()
    np.testing.assert_array_equal(grow_to_object(img, np.zeros(img.shape[:2], bool)), np.zeros(img.shape[:2], bool))
    with pytest.raises(InvalidParameterError, match="seed"):
        grow_to_object(img, np.zeros((5, 5), bool))
    with pytest.raises(InvalidParameterError, match="uint8"):
        grow_to_object(img.astype(np.float32), np.zeros(img.shape[:2], bool))
    with pytest.raises(InvalidParameterError, match="grow"):
        grow_to_object(img, np.zeros(img.shape[:2], bool), grow=0)
    with pytest.raises(InvalidParameterError, match="max_region"):
        grow_to_object(img, np.zeros(img.shape[:2], bool), max_region=0)


def test_deterministic():
    img = textured(seed=4)
    seed = np.zeros(img.shape[:2], bool)
    seed[60:75, 60:75] = True
    np.testing.assert_array_equal(grow_to_object(img, seed), grow_to_object(img, seed))
