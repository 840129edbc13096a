"""End-to-end pipeline on planted data: the search must obfuscate the planted patch and little else."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data as skdata

from tests.conftest import planted
from veil import SafeguardConfig, Safeguarder, safeguard
from veil.errors import InvalidImageError, InvalidParameterError, UnknownNameError


def precision_recall(mask: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    inter = float((mask & truth).sum())
    return inter / max(mask.sum(), 1), inter / max(truth.sum(), 1)


@pytest.mark.parametrize(
    ("attribution", "segmentation", "options"),
    [
        ("fullgrad", "felzenszwalb", {}),
        ("gradcam", "slic", {"n_segments": 64}),
        ("gradcam", "watershed", {}),
    ],
)
def test_search_obfuscates_the_planted_patch(planted_classifier, attribution, segmentation, options):
    sg = Safeguarder(
        # the search's own precision: the object extent trades some of it for recall (test_extent.py)
        SafeguardConfig(models=(planted_classifier,), attribution=attribution,
                        segmentation=segmentation, segmentation_options=options, extent="minimal"),
        classifiers=[planted_classifier],
    )
    found, precisions, recalls = 0, [], []
    for i in range(8):
        img, truth = planted(np.random.default_rng(100 + i), 96)
        res = sg.run(img)
        assert res.unsafe
        if res.counterfactual_found:
            found += 1
            assert not res.fail_closed
            assert res.depth == len(res.regions) >= 1
            # the delivered image itself was re-classified safe
            assert all(m.unsafe_score <= m.threshold for m in res.models_after)
            np.testing.assert_array_equal(res.image[~res.mask], img[~res.mask])
            p, r = precision_recall(res.mask, truth)
            precisions.append(p)
            recalls.append(r)
        else:
            assert res.fail_closed and res.mask.all()
    assert found >= 6
    assert np.mean(recalls) >= 0.75
    assert np.mean(precisions) >= 0.4


def test_safe_images_are_untouched(planted_classifier):
    sg = Safeguarder(SafeguardConfig(models=(planted_classifier,)), classifiers=[planted_classifier])
    for i in range(4):
        img, _ = planted(np.random.default_rng(200 + i), 96, unsafe=False, distractor=True)
        res = sg.run(img)
        assert not res.unsafe and not res.fail_closed and res.depth is None
        np.testing.assert_array_equal(res.image, img)
        assert not res.mask.any() and res.obfuscated_fraction == 0.0
        assert res.scores == res.scores_after


def test_fail_closed_when_no_counterfactual(planted_classifier):
    # max_depth 1 with a tiny segmentation granularity: one region cannot hide the patch.
    cfg = SafeguardConfig(models=(planted_classifier,), max_depth=1, segmentation="slic",
                          segmentation_options={"n_segments": 400}, merge=None, coarser=())
    img, _ = planted(np.random.default_rng(7), 96, patch=30)
    res = Safeguarder(cfg, classifiers=[planted_classifier]).run(img)
    assert res.unsafe and res.fail_closed and not res.counterfactual_found
    assert res.mask.all() and res.obfuscated_fraction == 1.0
    assert np.ptp(res.image) == 0  # fully obscured: a single flat colour
    assert res.note and "no counterfactual" in res.note and "unmerged" in res.note


def test_coarser_regions_are_tried_before_failing_closed(planted_classifier):
    # The same fine segmentation fails at depth 1; a merge threshold beyond any Lab distance
    # joins everything into one region, which the retry then obfuscates.
    # (extent "minimal": the object extent would split that one region again, see test_extent.py)
    cfg = SafeguardConfig(models=(planted_classifier,), max_depth=1, segmentation="slic",
                          segmentation_options={"n_segments": 400}, merge=None, coarser=(500.0,),
                          extent="minimal")
    img, _ = planted(np.random.default_rng(7), 96, patch=30)
    res = Safeguarder(cfg, classifiers=[planted_classifier]).run(img)
    assert res.counterfactual_found and not res.fail_closed and res.depth == 1
    assert res.n_evaluated == 2  # one candidate per level
    assert res.mask.all() and res.note and "coarsened to merge 500" in res.note
    assert all(m.unsafe_score <= m.threshold for m in res.models_after)


def test_default_merge_joins_segments_before_the_search(planted_classifier):
    img, _ = planted(np.random.default_rng(4), 96)
    # (extent "minimal": the object extent's later steps cut figures and pieces into the regions it
    # hides, so its final segments need not be unions of the raw segments; the merge is what is tested)
    base = dict(models=(planted_classifier,), segmentation="bass", coarser=(), extent="minimal")
    assert SafeguardConfig(**base).merge_threshold == 12.0  # BASS over-segments and is merged by default
    assert SafeguardConfig(segmentation="slic").merge_threshold == 0.0
    merged = Safeguarder(SafeguardConfig(**base), classifiers=[planted_classifier]).run(img)
    raw = Safeguarder(SafeguardConfig(**base, merge=0), classifiers=[planted_classifier]).run(img)
    assert merged.segments is not None and raw.segments is not None
    assert merged.segments.max() < raw.segments.max()
    # every merged region is a union of raw segments
    pairs = set(zip(raw.segments.ravel().tolist(), merged.segments.ravel().tolist(), strict=True))
    assert len(pairs) == raw.segments.max() + 1


def test_fail_closed_when_a_stage_raises(planted_classifier, monkeypatch):
    import veil.pipeline as pipeline

    def boom(*a, **k):
        raise RuntimeError("segmenter crashed")

    monkeypatch.setattr(pipeline, "segment", boom)
    img, _ = planted(np.random.default_rng(3), 96)
    res = Safeguarder(SafeguardConfig(models=(planted_classifier,)), classifiers=[planted_classifier]).run(img)
    assert res.fail_closed and res.mask.all() and "segmenter crashed" in res.error
    assert np.ptp(res.image) == 0


def test_large_images_are_segmented_on_a_smaller_copy(planted_classifier, monkeypatch):
    from PIL import Image

    import veil.pipeline as pipeline

    shapes = []
    real_segment = pipeline.segment

    def spy(image, method, **kw):
        shapes.append(image.shape[:2])
        return real_segment(image, method, **kw)

    monkeypatch.setattr(pipeline, "segment", spy)
    small, truth = planted(np.random.default_rng(10), 96)
    big = np.asarray(Image.fromarray(small).resize((288, 288), Image.Resampling.NEAREST))
    big_truth = np.kron(truth, np.ones((3, 3), bool))
    cfg = SafeguardConfig(models=(planted_classifier,), segmentation="felzenszwalb", segment_size=96)
    res = Safeguarder(cfg, classifiers=[planted_classifier]).run(big)
    assert shapes == [(96, 96)]
    assert res.counterfactual_found and res.mask.shape == big.shape[:2] == res.segments.shape
    np.testing.assert_array_equal(res.image[~res.mask], big[~res.mask])
    p, r = precision_recall(res.mask, big_truth)
    assert r >= 0.8 and p >= 0.8
    full = Safeguarder(SafeguardConfig(models=(planted_classifier,), segmentation="felzenszwalb", segment_size=None),
                       classifiers=[planted_classifier]).run(big)
    assert shapes[-1] == (288, 288) and full.segments.shape == big.shape[:2]


def test_input_is_not_modified(planted_classifier):
    img, _ = planted(np.random.default_rng(11), 96)
    before = img.copy()
    Safeguarder(SafeguardConfig(models=(planted_classifier,)), classifiers=[planted_classifier]).run(img)
    np.testing.assert_array_equal(img, before)
    assert img.flags.writeable


def test_several_models_all_must_be_safe(planted_classifier):
    import copy

    second = copy.copy(planted_classifier)
    second.name = "second"
    sg = Safeguarder(SafeguardConfig(models=(planted_classifier, second)),
                     classifiers=[planted_classifier, second])
    img, _ = planted(np.random.default_rng(5), 96)
    res = sg.run(img)
    assert set(res.scores) == {"planted/safe", "planted/unsafe", "second/safe", "second/unsafe"}
    assert res.counterfactual_found
    assert all(m.unsafe_score <= m.threshold for m in res.models_after)
    with pytest.raises(InvalidParameterError, match="unique"):
        Safeguarder(SafeguardConfig(models=("a", "b")), classifiers=[planted_classifier, planted_classifier])


@pytest.mark.parametrize("search", ["greedy", "subset", "csra"])
def test_every_search_strategy_runs_end_to_end(planted_classifier, search):
    cfg = SafeguardConfig(models=(planted_classifier,), search=search, segmentation="felzenszwalb", max_depth=4)
    img, truth = planted(np.random.default_rng(21), 96)
    res = Safeguarder(cfg, classifiers=[planted_classifier]).run(img)
    assert res.counterfactual_found
    assert precision_recall(res.mask, truth)[1] > 0.5


def test_config_validation():
    with pytest.raises(UnknownNameError, match="slic"):
        SafeguardConfig(segmentation="nope")
    with pytest.raises(UnknownNameError, match="greedy"):
        SafeguardConfig(search="nope")
    with pytest.raises(InvalidParameterError, match="max_depth"):
        SafeguardConfig(max_depth=0)
    with pytest.raises(InvalidParameterError, match="threshold"):
        SafeguardConfig(threshold=1.5)
    with pytest.raises(InvalidParameterError, match="merge"):
        SafeguardConfig(merge=-1.0)
    with pytest.raises(InvalidParameterError, match="coarser"):
        SafeguardConfig(coarser=(30.0, float("nan")))
    assert SafeguardConfig(coarser=45).coarser == (45.0,)
    assert SafeguardConfig(coarser=(5.0, 30.0)).merge_levels == [12.0, 30.0]  # thresholds not above merge are skipped
    assert SafeguardConfig(segmentation="slic", coarser=()).merge_levels == [0.0]
    with pytest.raises(InvalidParameterError, match="segment_size"):
        SafeguardConfig(segment_size=8)


def test_bad_input_raises_clear_error(planted_classifier):
    sg = Safeguarder(SafeguardConfig(models=(planted_classifier,)), classifiers=[planted_classifier])
    with pytest.raises(InvalidImageError):
        sg.run(b"not an image")


def test_real_photos_stay_untouched_with_nudenet():
    for name in ("astronaut", "coffee", "chelsea"):
        img = getattr(skdata, name)()
        res = safeguard(img, SafeguardConfig(models=("nudenet",)))
        assert not res.unsafe, name
        np.testing.assert_array_equal(res.image, img)


def test_rationale_failure_never_withholds_the_image(planted_classifier, monkeypatch):
    import veil.rationale

    def broken(*a, **k):
        raise RuntimeError("VLM unreachable")

    monkeypatch.setattr(veil.rationale, "explain", broken)
    img, _ = planted(np.random.default_rng(5), 96)
    res = Safeguarder(SafeguardConfig(models=(planted_classifier,), segmentation="felzenszwalb"),
                      classifiers=[planted_classifier]).run(img)
    assert res.counterfactual_found and not res.fail_closed
    assert res.rationale["text"] is None and "VLM unreachable" in res.rationale["error"]


def test_grounded_rationale_names_obfuscated_place(planted_classifier):
    img, _ = planted(np.random.default_rng(5), 96)
    res = Safeguarder(SafeguardConfig(models=(planted_classifier,), segmentation="felzenszwalb"),
                      classifiers=[planted_classifier]).run(img)
    assert res.rationale["backend"] == "grounded"
    assert "obfuscated" in res.rationale["text"]
    assert res.rationale["control"]["unsafe"] is True
