"""Felzenszwalb graph segmentation in numba: scikit-image's labels, value for value, with ties in pair order."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.segmentation import felzenszwalb as skimage_felzenszwalb

from veil.errors import InvalidParameterError
from veil.segment import segment
from veil.segment.graph import _stable_sort, felzenszwalb_graph, felzenszwalb_labels


def _blocks(rng: np.random.Generator, h: int, w: int, noise: int) -> np.ndarray:
    """Flat rectangles on black (many equal weights: the order of ties matters), with optional grain."""
    img = np.zeros((h, w, 3), np.uint8)
    for _ in range(6):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        img[y:y + int(rng.integers(2, 40)), x:x + int(rng.integers(2, 40))] = rng.integers(0, 256, 3)
    if noise:
        img = np.clip(img.astype(np.int16) + rng.integers(0, noise + 1, img.shape), 0, 255).astype(np.uint8)
    return img


@contextmanager
def _stable_numpy_sort() -> Iterator[None]:
    """scikit-image sorts the pairs with ``np.argsort``; make that sort stable (ties in pair order)."""
    plain = np.argsort

    def stable(a: np.ndarray, axis: int = -1, kind: str | None = None, order: object = None) -> np.ndarray:
        assert kind is None and order is None  # what scikit-image asks for
        calls.append(len(a))
        return plain(a, axis=axis, kind="stable")

    calls: list[int] = []
    np.argsort = stable
    try:
        yield
    finally:
        np.argsort = plain
    assert calls, "scikit-image no longer sorts with np.argsort: this reference has to change"


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), h=st.integers(1, 70), w=st.integers(1, 70), noise=st.sampled_from([0, 2, 40]),
       scale=st.sampled_from([1.0, 50.0, 400.0, 5000.0]), sigma=st.sampled_from([0.0, 0.8, 2.0]),
       min_size=st.integers(0, 60))
def test_labels_equal_scikit_images(seed: int, h: int, w: int, noise: int, scale: float, sigma: float,
                                    min_size: int) -> None:
    # blocks make many equal weights, whose order matters: ours is the pairs' order, so scikit-image's
    # sort is made stable for the comparison (numpy's default sort leaves the order of ties open)
    img = _blocks(np.random.default_rng(seed), h, w, noise)
    ours = felzenszwalb_labels(img, scale=scale, sigma=sigma, min_size=min_size)
    with _stable_numpy_sort():
        theirs = skimage_felzenszwalb(img, scale=scale, sigma=sigma, min_size=min_size)
    assert ours.dtype == np.int64
    np.testing.assert_array_equal(ours, theirs)


def _weights_with_ties(draw: st.DrawFn) -> np.ndarray:
    kind = draw(st.sampled_from(["few values", "zeros and spread", "wide range", "one value", "uniform"]))
    n = draw(st.integers(0, 3000))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    if kind == "few values":
        w = rng.integers(0, 5, n) * 0.125
    elif kind == "zeros and spread":
        w = np.where(rng.random(n) < 0.3, 0.0, rng.random(n) ** 6)
    elif kind == "wide range":
        w = np.exp(rng.normal(0.0, 30.0, n)) * (rng.random(n) < 0.9)
    elif kind == "one value":
        w = np.full(n, draw(st.sampled_from([0.0, 0.25, 1e-300])))
    else:
        w = rng.random(n)
    return np.ascontiguousarray(w, dtype=np.float64)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_stable_sort_is_numpys_stable_argsort(data: st.DataObject) -> None:
    w = _weights_with_ties(data.draw)
    order, keys = _stable_sort(w.view(np.int64))
    np.testing.assert_array_equal(order, np.argsort(w, kind="stable"))
    np.testing.assert_array_equal(keys, w.view(np.int64)[order])  # (the graph keeps them as its sorted weights)


def test_stable_sort_sorts_a_bucket_too_full_for_insertion() -> None:
    # one weight far above a cluster of 3000 (with repeats) narrower than one bucket: the merge-sort path
    rng = np.random.default_rng(0)
    w = np.concatenate([[1.0], 0.5 + rng.integers(0, 2000, 3000) * 2.0**-50, np.zeros(50)])
    bits = w.view(np.int64)
    cluster = bits[(w > 0) & (w < 1)]
    assert cluster.max() - cluster.min() < (bits.max() - cluster.min()) // w.size  # one bucket's width
    order, keys = _stable_sort(bits)
    np.testing.assert_array_equal(order, np.argsort(w, kind="stable"))
    np.testing.assert_array_equal(keys.view(np.float64), np.sort(w, kind="stable"))  # (reordered with the indices)


def test_labels_equal_scikit_images_on_a_photo_like_image() -> None:
    # smooth gradients, texture and edges at the figure search's working size
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:256, :384]
    img = np.stack([xx * 0.6, yy * 0.9, (xx + yy) * 0.3], axis=2) + rng.normal(0, 6, (256, 384, 3))
    img[80:150, 100:220] = (200, 40, 40)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for scale, min_size in ((400.0, 24), (200.0, 6)):
        np.testing.assert_array_equal(felzenszwalb_labels(img, scale=scale, sigma=0.8, min_size=min_size),
                                      skimage_felzenszwalb(img, scale=scale, sigma=0.8, min_size=min_size))


def test_one_graph_cut_at_several_scales_gives_each_scales_labels() -> None:
    img = _blocks(np.random.default_rng(4), 90, 130, 40)  # grain, and flat blocks (ties)
    cut = felzenszwalb_graph(img, sigma=0.8)
    seen = set()
    for scale, min_size in ((400.0, 10), (200.0, 4), (50.0, 0), (400.0, 10)):  # any order, and again
        labels = cut(scale, min_size)
        with _stable_numpy_sort():
            np.testing.assert_array_equal(labels, skimage_felzenszwalb(img, scale=scale, sigma=0.8, min_size=min_size))
        seen.add(int(labels.max()))
    assert len(seen) == 3  # the scales really cut differently
    with pytest.raises(InvalidParameterError, match="scale"):
        cut(0.0, 10)
    with pytest.raises(InvalidParameterError, match="min_size"):
        cut(100.0, -1)


def test_grey_and_float_images_as_scikit_image_takes_them() -> None:
    g = np.random.default_rng(0).random((40, 50))
    np.testing.assert_array_equal(felzenszwalb_labels(g, scale=2.0, sigma=0.5, min_size=5),
                                  skimage_felzenszwalb(g, scale=2.0, sigma=0.5, min_size=5, channel_axis=None))


def test_known_answer_two_halves_and_a_square() -> None:
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, 30:] = 220
    img[10:20, 5:15] = (0, 0, 255)
    labels = felzenszwalb_labels(img, scale=100.0, sigma=0.0, min_size=10)  # no blur: no rims along the edges
    assert int(labels.max()) + 1 == 3
    assert len({labels[0, 0], labels[0, 59], labels[15, 10]}) == 3
    assert labels[0, 0] == 0  # numbered by first pixel in raster order


def test_input_is_not_modified() -> None:
    img = _blocks(np.random.default_rng(1), 30, 30, 2)
    before = img.copy()
    felzenszwalb_labels(img, scale=100.0)
    np.testing.assert_array_equal(img, before)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"scale": 0.0}, "scale"), ({"scale": float("nan")}, "scale"), ({"sigma": -1.0}, "sigma"),
    ({"min_size": 2.5}, "min_size"), ({"min_size": -1}, "min_size"),
])
def test_bad_parameters_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        felzenszwalb_labels(np.zeros((8, 8, 3), np.uint8), **kwargs)


def test_non_finite_image_is_refused() -> None:
    img = np.zeros((8, 8), np.float64)
    img[3, 3] = np.nan
    with pytest.raises(InvalidParameterError, match="finite"):
        felzenszwalb_labels(img)


def test_empty_image_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="non-empty"):
        felzenszwalb_labels(np.zeros((0, 8, 3), np.uint8))


def test_registered_segmenter_gives_scikit_images_segments() -> None:
    img = _blocks(np.random.default_rng(5), 60, 80, 10)
    ours = segment(img, "felzenszwalb")
    theirs = skimage_felzenszwalb(img, scale=500.0, sigma=0.5, min_size=60 * 80 // 50)
    # the registry renumbers; the partition is the same
    pairs = set(zip(ours.ravel().tolist(), theirs.ravel().tolist(), strict=True))
    assert len(pairs) == len(np.unique(ours)) == len(np.unique(theirs))
