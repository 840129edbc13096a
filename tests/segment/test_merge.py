"""Region merging: the same partition as scikit-image's RAG threshold cut, known answers, errors."""

from __future__ import annotations

import numpy as np
import pytest

from veil.errors import InvalidParameterError
from veil.segment import merge_similar, segment


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.ravel().tolist(), b.ravel().tolist(), strict=True))
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


@pytest.mark.parametrize("threshold", [5.0, 12.0, 25.0])
def test_matches_scikit_image_cut_threshold(threshold: float) -> None:
    from skimage import color, data, graph

    image = data.coffee()[::2, ::2]
    labels = segment(image, "slic", n_segments=200, compactness=10.0)
    ours = merge_similar(image, labels, threshold)
    rag = graph.rag_mean_color(color.rgb2lab(image), labels, mode="distance")
    ref = graph.cut_threshold(labels, rag, threshold)
    assert _same_partition(ours, ref)
    assert ours.max() + 1 < labels.max() + 1  # something was merged


def test_pieces_of_one_object_join_and_background_stays_apart() -> None:
    img = np.full((40, 60, 3), 30, np.uint8)
    img[:, 30:] = (220, 20, 30)                    # a red half
    img[:20, :30] = (40, 35, 30)                   # a slightly different dark shade
    grid = (np.arange(40)[:, None] // 10) * 6 + np.arange(60)[None, :] // 10  # 24 square cells
    merged = merge_similar(img, grid, threshold=8.0)
    assert np.unique(merged[:, 30:]).size == 1
    assert np.unique(merged[:, :30]).size == 1     # the two dark shades are within 8 Lab units
    assert merged[0, 0] != merged[0, 59]
    assert merged.dtype == np.int32 and merged.min() == 0
    apart = merge_similar(img, grid, threshold=2.0)
    assert np.unique(apart[:, :30]).size == 2 and np.unique(apart[:, 30:]).size == 1


def test_zero_threshold_only_relabels_and_inputs_untouched() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
    labels = (np.arange(400).reshape(20, 20) // 37) * 3 + 5
    img0, labels0 = img.copy(), labels.copy()
    out = merge_similar(img, labels, 0.0)
    assert _same_partition(out, labels) and out.min() == 0 and out.max() == np.unique(labels).size - 1
    merge_similar(img, labels, 50.0)
    assert np.array_equal(img, img0) and np.array_equal(labels, labels0)


def test_errors_name_the_parameter() -> None:
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(InvalidParameterError, match="labels .* shape"):
        merge_similar(img, np.zeros((4, 4), int))
    with pytest.raises(InvalidParameterError, match="non-negative"):
        merge_similar(img, -np.ones((8, 8), int))
    with pytest.raises(InvalidParameterError, match="threshold"):
        merge_similar(img, np.zeros((8, 8), int), threshold=-1.0)


def test_resize_labels_keeps_the_partition_and_the_shape() -> None:
    from veil.segment import resize_labels

    labels = (np.arange(12 * 16).reshape(12, 16) // 7) % 5
    up = resize_labels(labels, (36, 48))
    assert up.shape == (36, 48) and up.dtype == np.int32
    np.testing.assert_array_equal(up[1::3, 1::3], labels)       # centres map onto centres
    down = resize_labels(up, (12, 16))
    np.testing.assert_array_equal(down, labels)
    with pytest.raises(InvalidParameterError, match="shape"):
        resize_labels(labels, (0, 4))
