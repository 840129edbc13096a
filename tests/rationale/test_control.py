"""Control codes built from planted pipeline results."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from tests.rationale import make_result, model_output, region
from veil.classify.base import Detection
from veil.errors import InvalidParameterError, UnknownNameError
from veil.rationale.control import (
    build_control,
    category_probabilities,
    detail_for_strength,
    level_for,
    place_name,
    size_name,
)

SHAPE = (60, 90)  # H, W


def nudenet_result(**kw):
    dets = [
        Detection("FEMALE_BREAST_EXPOSED", 0.93, (3, 4, 20, 12)),  # upper left
        Detection("FACE_FEMALE", 0.88, (40, 25, 10, 10)),  # centre, not unsafe
    ]
    m = model_output(
        "nudenet",
        {"FEMALE_BREAST_EXPOSED": 0.93, "BUTTOCKS_EXPOSED": 0.1, "FACE_FEMALE": 0.88},
        ["FEMALE_BREAST_EXPOSED", "BUTTOCKS_EXPOSED"],
        detections=dets,
    )
    m.unsafe_score = 0.93
    reg = region(7, 0, (3, 4, 20, 12), SHAPE)
    return make_result([m], shape=SHAPE, regions=[reg], **kw)


def test_place_grid_and_sizes():
    assert place_name(0.0, 0.0) == "upper left"
    assert place_name(1.0, 1.0) == "lower right"
    assert place_name(0.5, 0.1) == "upper centre"
    assert place_name(0.1, 0.5) == "centre left"
    assert place_name(0.5, 0.5) == "centre"
    with pytest.raises(InvalidParameterError):
        place_name(float("nan"), 0.2)
    assert [size_name(a) for a in (0.0, 0.049, 0.05, 0.199, 0.2)] == [
        "small", "small", "medium", "medium", "large"]


def test_levels_follow_the_paper():
    assert level_for(0.9) == "contains"
    assert level_for(0.899) == "could_contain"
    assert level_for(0.5) == "could_contain"
    assert level_for(0.499) == "low"


def test_detail_for_strength_and_validation():
    assert detail_for_strength(0) == "none"
    assert detail_for_strength(1) == "full"
    for bad in (-0.1, 1.1, "x", float("nan")):
        with pytest.raises(InvalidParameterError, match="strength"):
            detail_for_strength(bad)


def test_nudenet_control_code_is_grounded_and_json():
    r = nudenet_result()
    before = copy.deepcopy((r.mask, r.image, [m.proba for m in r.models]))
    c = build_control(r)
    json.dumps(c)  # JSON-serialisable
    assert c["unsafe"] and c["statement"] == "the image contains sexually explicit content"
    assert [(x["category"], x["level"]) for x in c["categories"]] == [("sexual", "contains")]
    dets = [a for a in c["attributes"] if a["kind"] == "detection"]
    assert [(a["label"], a["place"]) for a in dets] == [("FEMALE_BREAST_EXPOSED", "upper left")]
    assert all(a["label"] != "FACE_FEMALE" for a in c["attributes"])
    assert [(g["place"], g["size"]) for g in c["regions"]] == [("upper left", "small")]
    assert c["regions"][0]["area_fraction"] == pytest.approx(240 / 5400, abs=1e-4)
    # inputs untouched
    np.testing.assert_array_equal(before[0], r.mask)
    np.testing.assert_array_equal(before[1], r.image)
    assert before[2] == [m.proba for m in r.models]


def test_softmax_categories_sum_and_low_ones_are_not_named():
    m = model_output(
        "ub",
        {"safe": 0.1, "violence": 0.35, "gore": 0.25, "self-harm": 0.3},
        ["violence", "gore", "self-harm"],
    )
    c = build_control(make_result([m]))
    by = {x["category"]: x for x in c["categories"]}
    assert by["violence"]["probability"] == pytest.approx(0.6)  # violence + gore
    assert by["violence"]["level"] == "could_contain"
    assert by["self_harm"]["level"] == "low"
    assert c["statement"] == "the image could contain violence"


def test_model_threshold_gates_naming():
    m = model_output("strict", {"safe": 0.4, "violence": 0.6}, ["violence"], threshold=0.7)
    other = model_output("bin", {"safe": 0.2, "nsfw_score": 0.8}, ["nsfw_score"])
    c = build_control(make_result([m, other]))
    by = {x["category"]: x for x in c["categories"]}
    assert by["violence"]["level"] == "low"  # 0.6 < the strict model's 0.7
    assert by["unsafe"]["generic"] and by["unsafe"]["level"] == "could_contain"
    assert c["statement"] == "the image could contain unsafe content"


def test_unsafe_without_named_category_could_be_unsafe():
    m = model_output("bin", {"safe": 0.6, "flagged": 0.4}, ["flagged"], threshold=0.3)
    c = build_control(make_result([m]))
    assert c["unsafe"]
    assert c["statement"] == "the image could be unsafe for viewing"
    assert all(x["level"] == "low" for x in c["categories"])
    assert c["attributes"] == []


def test_safe_image_has_no_categories_or_statement():
    m = model_output("ub", {"safe": 0.7, "self-harm": 0.3}, ["self-harm"])
    c = build_control(make_result([m]))
    assert not c["unsafe"]
    assert c["statement"] is None
    assert c["categories"] == [] and c["attributes"] == [] and c["regions"] == []
    assert c["models"][0]["unsafe_score"] == pytest.approx(0.3)


def test_card_categories_mapping():
    m = model_output("card", {"ok": 0.05, "c1": 0.95}, ["c1"])
    c = build_control(make_result([m]), categories={"card": {"c1": "cyberbullying"}})
    assert c["statement"] == "the image contains cyberbullying"
    with pytest.raises(UnknownNameError):
        build_control(make_result([m]), categories={"card": {"c1": "nonsense"}})
    with pytest.raises(InvalidParameterError, match="categories"):
        build_control(make_result([m]), categories={"card": ["c1"]})


def test_only_obfuscated_regions_are_listed():
    m = model_output("bin", {"safe": 0.05, "porn": 0.95}, ["porn"])
    inside = region(1, 0, (60, 40, 20, 15), SHAPE)  # lower right, in the mask
    outside = region(2, 1, (0, 0, 10, 10), SHAPE)  # upper left, not obfuscated
    r = make_result([m], shape=SHAPE, regions=[inside, outside], masked=[inside])
    c = build_control(r)
    assert [g["id"] for g in c["regions"]] == [1]
    assert c["regions"][0]["place"] == "lower right"


def test_bad_inputs():
    with pytest.raises(InvalidParameterError, match="Result"):
        build_control({"unsafe": True})
    r = nudenet_result()
    with pytest.raises(InvalidParameterError, match="levels"):
        build_control(r, levels=(0.9, 0.5))


def test_category_probabilities_detections_use_max():
    det = Detection("BUTTOCKS_EXPOSED", 0.97, (0, 0, 5, 5))
    m = model_output("nn", {"BUTTOCKS_EXPOSED": 0.4, "FACE_MALE": 0.9}, ["BUTTOCKS_EXPOSED"],
                     detections=[det])
    probs = category_probabilities([m])
    assert probs["sexual"]["probability"] == pytest.approx(0.97)
    assert probs["sexual"]["nameable"]


def test_max_style_model_is_not_summed():
    # NudeNet-style: the unsafe score is the max over labels, even when they happen to sum to 1
    m = model_output("nn", {"FEMALE_BREAST_EXPOSED": 0.55, "BUTTOCKS_EXPOSED": 0.45},
                     ["FEMALE_BREAST_EXPOSED", "BUTTOCKS_EXPOSED"])
    m.unsafe_score = 0.55
    c = build_control(make_result([m]))
    assert c["categories"][0]["probability"] == pytest.approx(0.55)
    assert c["statement"] == "the image could contain sexually explicit content"
