import numpy as np
import pytest

from veil.counterfactual import (
    STYLES,
    obfuscate,
    rank_regions,
    region_scores,
    regions_mask,
    stylize,
)
from veil.counterfactual.regions import describe_regions
from veil.errors import InvalidParameterError


def test_region_scores_and_ranking():
    labels = np.array([[0, 0, 1, 1], [2, 2, 1, 1]])
    att = np.array([[0.1, 0.1, 0.9, 0.7], [0.5, 0.5, 0.8, 0.8]])
    np.testing.assert_allclose(region_scores(att, labels), [0.1, 0.8, 0.5])
    order, _ = rank_regions(att, labels)
    assert order.tolist() == [1, 2, 0]
    assert regions_mask(labels, [1]).sum() == 4
    with pytest.raises(InvalidParameterError, match="same shape"):
        region_scores(att[:1], labels)


def test_describe_regions_place():
    labels = np.zeros((10, 20), np.int32)
    labels[:5, :10] = 1
    (r,) = describe_regions(labels, [1], np.array([0.0, 1.0]))
    assert r.bbox == (0, 0, 10, 5)
    assert r.area_fraction == pytest.approx(0.25)
    assert r.centroid == pytest.approx((0.25, 0.25))


@pytest.mark.parametrize("name", STYLES.names())
def test_style_contract(name):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    before = img.copy()
    mask = np.zeros((40, 60), bool)
    mask[10:30, 20:40] = True
    out = obfuscate(img, mask, name)
    np.testing.assert_array_equal(img, before)  # input untouched
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[~mask], img[~mask])  # outside the mask unchanged
    # detail inside is gone: high-frequency energy collapses
    inside = out[10:30, 20:40].astype(float)
    assert np.abs(np.diff(inside, axis=1)).mean() < 0.25 * np.abs(np.diff(img[10:30, 20:40].astype(float), axis=1)).mean()


def test_stylize_unknown_and_mask_shape():
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(KeyError, match="blur"):
        stylize(img, "nope")
    with pytest.raises(InvalidParameterError, match="mask"):
        obfuscate(img, np.zeros((4, 4), bool))
