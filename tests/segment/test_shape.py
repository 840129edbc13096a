"""Shape measures in exact integer arithmetic: scikit-image's convex hull image and SciPy's distances, exactly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image

from veil.errors import InvalidParameterError
from veil.segment.shape import convex_hull_count, convex_hull_mask, convex_hull_rows, depth_squared


@st.composite
def masks(draw: st.DrawFn) -> np.ndarray:
    """Masks of the kinds the figure search weighs: scattered pixels, a few points, thin lines, ellipses."""
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    kind = draw(st.sampled_from(["scatter", "points", "line", "ellipse", "full"]))
    m = np.zeros((h, w), bool)
    if kind == "scatter":
        m = rng.random((h, w)) < rng.random()
    elif kind == "points":
        m[rng.integers(0, h, 3), rng.integers(0, w, 3)] = True
    elif kind == "line":  # (a one-pixel line at any slope: collinear hull points, edges through pixel centres)
        y0, x0, y1, x1 = rng.integers(0, h), rng.integers(0, w), rng.integers(0, h), rng.integers(0, w)
        for t in np.linspace(0.0, 1.0, 80):
            m[int(round(y0 + t * (y1 - y0))), int(round(x0 + t * (x1 - x0)))] = True
    elif kind == "ellipse":
        yy, xx = np.mgrid[:h, :w]
        m = ((yy - rng.uniform(0, h)) ** 2 / rng.uniform(1, 300) + (xx - rng.uniform(0, w)) ** 2
             / rng.uniform(1, 300)) < 1
    else:
        m[:] = True
    return m


@settings(max_examples=300, deadline=None)
@given(m=masks())
def test_convex_hull_is_scikit_images(m: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (scikit-image warns of an empty mask)
        theirs = convex_hull_image(m)
    np.testing.assert_array_equal(convex_hull_mask(m), theirs)
    assert convex_hull_count(m) == int(theirs.sum())


@settings(max_examples=300, deadline=None)
@given(m=masks())
def test_depth_is_scipys_distance_to_the_border(m: np.ndarray) -> None:
    theirs = ndi.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
    ours = depth_squared(m)
    assert ours.dtype == np.int64
    np.testing.assert_array_equal(np.sqrt(ours.astype(np.float64)), theirs)  # (to the last bit)


def test_hull_of_a_ring_and_of_nothing() -> None:
    ring = np.zeros((9, 9), bool)
    ring[1:8, 1:8] = True
    ring[2:7, 2:7] = False
    assert convex_hull_count(ring) == 49  # the hole is inside the hull
    first, last = convex_hull_rows(np.zeros((3, 4), bool))
    assert (first > last).all() and convex_hull_count(np.zeros((3, 4), bool)) == 0
    assert not convex_hull_mask(np.zeros((3, 4), bool)).any()


def test_depth_of_a_band_and_a_block() -> None:
    band = np.ones((1, 6), bool)
    assert depth_squared(band).tolist() == [[1] * 6]  # one pixel from the outside above and below
    block = np.ones((5, 5), bool)
    assert depth_squared(block)[2, 2] == 9  # the centre, three pixels from the surroundings


@pytest.mark.parametrize("fn", [convex_hull_rows, convex_hull_count, convex_hull_mask, depth_squared])
def test_a_mask_must_be_2d(fn: object) -> None:
    with pytest.raises(InvalidParameterError, match="2-D"):
        fn(np.zeros((2, 2, 2), bool))  # type: ignore[operator]


def test_strided_non_bool_and_large_masks_match_too() -> None:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:300, :260]
    big = ((yy - 140.0) ** 2 / 9000 + (xx - 120.0) ** 2 / 2500) < 1  # a large ellipse...
    big[rng.random(big.shape) < 0.02] = True  # ...with specks around it
    # the mask itself, its transpose (Fortran order), a strided view, and a uint8 mask of 0 and 3
    for m in (big, big.T, big[::2, 1::3], (big[:40, :50] * 3).astype(np.uint8)):
        b = m.astype(bool)
        np.testing.assert_array_equal(convex_hull_mask(m), convex_hull_image(b))
        np.testing.assert_array_equal(np.sqrt(depth_squared(m).astype(np.float64)),
                                      ndi.distance_transform_edt(np.pad(b, 1))[1:-1, 1:-1])
