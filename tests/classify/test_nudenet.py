"""NudeNetClassifier: parity with nudenet itself and with onnxruntime, batching, detection, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from veil.classify import (
    CLASSIFIERS,
    Classifier,
    DetectorClassifier,
    GradientClassifier,
    load_classifier,
)
from veil.classify.nudenet import (
    DEFAULT_UNSAFE_LABELS,
    NUDENET_LABELS,
    Letterbox,
    NudeNetClassifier,
    bundled_model_path,
    decode_detections,
    letterbox,
)
from veil.errors import InvalidParameterError, ModelLoadError
from veil.image import save_image

pytestmark = pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning")

# Raw outputs hold box coordinates in network pixels (0..320) and sigmoid class scores.
BOX_ATOL = 5e-3
SCORE_ATOL = 1e-4


def _noise() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (180, 260, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def clf() -> NudeNetClassifier:
    return NudeNetClassifier()


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return [data.astronaut(), data.coffee(), _noise()]


def test_protocols_and_registry(clf: NudeNetClassifier) -> None:
    assert isinstance(clf, Classifier)
    assert isinstance(clf, GradientClassifier)
    assert isinstance(clf, DetectorClassifier)
    assert "nudenet" in CLASSIFIERS
    assert clf.labels == NUDENET_LABELS and len(clf.labels) == 18
    assert clf.unsafe_labels == DEFAULT_UNSAFE_LABELS
    assert clf.name == "nudenet" and clf.threshold == 0.5
    assert clf.config["input_size"] == 320
    assert clf.config["model_path"] == str(bundled_model_path())


def test_load_classifier_by_name() -> None:
    c = load_classifier("nudenet", threshold=0.3)
    assert isinstance(c, NudeNetClassifier) and c.threshold == 0.3


def test_letterbox_matches_nudenet_preprocessing() -> None:
    from nudenet.nudenet import _read_image

    rgb = data.coffee()[:, :500]  # 400×500: padded at the bottom
    blob, geo = letterbox(rgb, 320)
    # NudeNet reads BGR from disk; feed it the same pixels in that order.
    ref = _read_image(np.ascontiguousarray(rgb[:, :, ::-1]), 320)[0][0]
    np.testing.assert_array_equal(blob, ref)
    assert geo == Letterbox(400, 500, 320) and geo.side == 500


def test_predict_proba_shape_range_and_batching(clf: NudeNetClassifier, images: list[np.ndarray]) -> None:
    batched = clf.predict_proba(images)
    assert batched.shape == (3, 18) and batched.dtype == np.float32
    assert np.all((batched >= 0) & (batched <= 1))
    single = np.concatenate([clf.predict_proba([im]) for im in images])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert clf.predict_proba([]).shape == (0, 18)


def test_inputs_not_modified(clf: NudeNetClassifier) -> None:
    im = data.astronaut()
    before = im.copy()
    clf.predict_proba([im])
    clf.detect(im)
    clf.torch_input(im)
    np.testing.assert_array_equal(im, before)


def test_sample_photos_are_safe(clf: NudeNetClassifier) -> None:
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    scores = clf.unsafe_score(clf.predict_proba(photos))
    assert scores.shape == (4,)
    assert np.all(scores < clf.threshold), scores


def test_unsafe_score_is_max_over_unsafe_labels(clf: NudeNetClassifier) -> None:
    proba = np.zeros((2, 18), np.float32)
    proba[0, NUDENET_LABELS.index("FACE_FEMALE")] = 0.9
    proba[1, NUDENET_LABELS.index("ANUS_EXPOSED")] = 0.7
    proba[1, NUDENET_LABELS.index("BUTTOCKS_EXPOSED")] = 0.4
    np.testing.assert_allclose(clf.unsafe_score(proba), [0.0, 0.7])
    with pytest.raises(InvalidParameterError, match="proba"):
        clf.unsafe_score(np.zeros((2, 5)))


def test_detect_matches_nudenet(clf: NudeNetClassifier, tmp_path) -> None:
    from nudenet import NudeDetector

    ref_detector = NudeDetector()
    for k, im in enumerate([data.astronaut(), _noise()]):
        path = tmp_path / f"{k}.png"
        save_image(im, path)
        ref = ref_detector.detect(str(path))
        ours = clf.detect(im)
        assert [(d.label, d.box) for d in ours] == [(r["class"], tuple(r["box"])) for r in ref]
        np.testing.assert_allclose([d.score for d in ours], [r["score"] for r in ref], atol=1e-6)


def test_detect_boxes_inside_image(clf: NudeNetClassifier) -> None:
    im = data.astronaut()[:300]  # non-square, so letterbox padding matters
    dets = clf.detect(im, threshold=0.05)
    assert dets, "the astronaut's face should be found at a low threshold"
    h, w = im.shape[:2]
    for d in dets:
        x, y, bw, bh = d.box
        assert d.label in NUDENET_LABELS and 0.05 <= d.score <= 1
        assert 0 <= x and 0 <= y and bw >= 0 and bh >= 0
        assert x + bw <= w and y + bh <= h
    assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
    faces = [d for d in dets if d.label == "FACE_FEMALE"]
    assert faces and 150 < faces[0].box[0] + faces[0].box[2] / 2 < 300
    with pytest.raises(InvalidParameterError, match="threshold"):
        clf.detect(im, threshold=1.0)


def test_scores_then_detections_run_the_network_once() -> None:
    """The pipeline scores an image and then asks for its detections: one forward pass, and the
    detections are those of a fresh classifier that must run the network itself."""
    fresh = NudeNetClassifier()
    im = data.astronaut()[:300]
    expected = fresh.detect(im, threshold=0.05)
    clf = NudeNetClassifier()
    calls = []
    run = clf._run
    clf._run = lambda x: calls.append(x.shape[0]) or run(x)  # type: ignore[method-assign]
    clf.predict_proba([im, data.coffee()])
    assert clf.detect(im, threshold=0.05) == expected
    assert calls == [2]  # the batch only; detect reused its row
    clf.detect(data.camera(), threshold=0.05)  # an image not scored before runs the network
    assert calls == [2, 1]


def test_decode_detections_geometry() -> None:
    out = np.zeros((6, 2), np.float32)
    out[:4, 0] = [16, 8, 8, 8]  # centre (16, 8), 8×8 in a 32² input
    out[5, 0] = 0.8
    dets = decode_detections(out, Letterbox(32, 64, 32), ["a", "b"])
    # side 64 → ×2: x = (16 - 4) * 2 = 24, y = (8 - 4) * 2 = 8, 16×16
    assert len(dets) == 1
    assert dets[0].label == "b" and dets[0].box == (24, 8, 16, 16)
    with pytest.raises(InvalidParameterError, match="4 \\+ 3"):
        decode_detections(out, Letterbox(32, 64, 32), ["a", "b", "c"])


def test_torch_matches_onnxruntime(clf: NudeNetClassifier, images: list[np.ndarray]) -> None:
    module = clf.torch_module()
    assert module is clf.torch_module()  # converted once, cached
    x = torch.cat([clf.torch_input(im) for im in images])
    assert x.shape == (3, 3, 320, 320) and x.dtype == torch.float32
    with torch.no_grad():
        y = module(x).numpy()
        logits = clf.torch_unsafe_score(x).numpy()
    ref = clf.raw_outputs(images)
    assert y.shape == ref.shape == (3, 22, 2100)
    np.testing.assert_allclose(y[:, :4], ref[:, :4], atol=BOX_ATOL)
    np.testing.assert_allclose(y[:, 4:], ref[:, 4:], atol=SCORE_ATOL)
    # torch_unsafe_score is the logit of unsafe_score, hence monotone in it.
    unsafe = clf.unsafe_score(ref[:, 4:, :].max(axis=2))
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), unsafe, atol=SCORE_ATOL)
    assert (np.argsort(logits) == np.argsort(unsafe)).all()


def test_gradients_flow_and_cam_layers_fire(clf: NudeNetClassifier) -> None:
    x = clf.torch_input(data.coffee()).requires_grad_(True)
    layers = clf.cam_target_layers()
    assert len(layers) == 3
    seen: list[tuple[int, ...]] = []
    handles = [m.register_forward_hook(lambda _m, _i, o: seen.append(tuple(o.shape))) for m in layers]
    try:
        score = clf.torch_unsafe_score(x)
    finally:
        for h in handles:
            h.remove()
    assert seen == [(1, 64, 40, 40), (1, 64, 20, 20), (1, 64, 10, 10)]
    assert score.shape == (1,) and torch.isfinite(score).all()
    score.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def face_clf() -> NudeNetClassifier:
    # FACE_FEMALE stands in for an unsafe label: scikit-image's astronaut has a known face.
    return NudeNetClassifier(unsafe_labels=["FACE_FEMALE"])


def test_grad_cam_on_target_layers_finds_the_face(face_clf: NudeNetClassifier) -> None:
    from pytorch_grad_cam import GradCAM

    c = face_clf
    im = data.astronaut()[:300, 50:]  # non-square: the map must be un-letterboxed right
    x0, y0, w, h = next(d.box for d in c.detect(im) if d.label == "FACE_FEMALE")

    class Score(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = c.torch_module()  # GradCAM reads the device from the parameters

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return c.torch_unsafe_score(x)[:, None]

    with GradCAM(model=Score(), target_layers=c.cam_target_layers()) as cam:
        grayscale = cam(input_tensor=c.torch_input(im), targets=[lambda out: out[0]])[0]
    heat = c.attribution_to_image(grayscale, im.shape[:2])
    assert heat.shape == im.shape[:2]
    py, px = np.unravel_index(np.argmax(heat), heat.shape)
    assert x0 <= px < x0 + w and y0 <= py < y0 + h
    assert heat[y0 : y0 + h, x0 : x0 + w].mean() > 5 * heat.mean()


def test_attribution_to_image_undoes_letterbox(clf: NudeNetClassifier) -> None:
    att = np.zeros((320, 320), np.float32)
    att[:160, :] = 1.0  # the top half of the network input = the whole 100×200 image
    out = clf.attribution_to_image(att, (100, 200))
    assert out.shape == (100, 200) and out.dtype == np.float32
    assert out.min() > 0.99
    tall = clf.attribution_to_image(np.random.default_rng(1).random((320, 320)), (300, 120))
    assert tall.shape == (300, 120)
    with pytest.raises(InvalidParameterError, match="attribution"):
        clf.attribution_to_image(np.zeros((2, 3, 4)), (10, 10))


def test_unsafe_labels_validation_lists_valid_labels() -> None:
    with pytest.raises(InvalidParameterError, match="FACE_FEMALE") as info:
        NudeNetClassifier(unsafe_labels=["NOT_A_LABEL"])
    assert "NOT_A_LABEL" in str(info.value) and "valid labels" in str(info.value)
    with pytest.raises(InvalidParameterError, match="string"):
        NudeNetClassifier(unsafe_labels="ANUS_EXPOSED")
    with pytest.raises(InvalidParameterError, match="non-empty"):
        NudeNetClassifier(unsafe_labels=[])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"detect_threshold": 0.0}, "detect_threshold"),
        ({"iou_threshold": 2}, "iou_threshold"),
        ({"input_size": 300}, "multiple of 32"),
        ({"batch_size": 0}, "batch_size"),
        ({"threshold": "high"}, "threshold"),
        ({"input_size": 320.0}, "input_size"),
        ({"target_layers": "model/21/cv2/act/Mul"}, "wrap it in a list"),
    ],
)
def test_parameter_validation(kwargs, match) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        NudeNetClassifier(**kwargs)


def test_custom_unsafe_labels_and_onnx_path(images) -> None:
    c = NudeNetClassifier(onnx_path=bundled_model_path(), unsafe_labels=["FACE_FEMALE"], threshold=0.4)
    proba = c.predict_proba(images[:1])
    assert c.unsafe_score(proba)[0] == pytest.approx(proba[0, 1])
    assert c.unsafe_score(proba)[0] > 0.4  # the astronaut's face


def test_missing_or_bad_onnx_path(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        NudeNetClassifier(onnx_path=tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(ModelLoadError, match="onnxruntime"):
        NudeNetClassifier(onnx_path=bad)
    with pytest.raises(ModelLoadError, match="labels="):
        NudeNetClassifier(labels=["a", "b"], unsafe_labels=["a"])


def test_unknown_target_layer_names_suggest_real_ones(clf: NudeNetClassifier) -> None:
    c = NudeNetClassifier(target_layers=["model/99/nope"])
    c._torch, c._torch_logits = clf.torch_module(), clf._torch_logits  # skip a second conversion
    with pytest.raises(InvalidParameterError, match="act/Mul"):
        c.cam_target_layers()
