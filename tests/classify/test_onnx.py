"""ONNX model cards: tiny graphs exported here in each layout, parity, gradients, crop mapping, errors."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from veil.attribution import attribute
from veil.classify import Classifier, GradientClassifier, load_classifier
from veil.classify.card import read_model_card, write_model_card
from veil.classify.onnx import (
    OnnxClassifier,
    OnnxGradientClassifier,
    crop_box,
    load_onnx_card,
    onnx_classifier,
)
from veil.errors import InvalidParameterError, ModelLoadError
from veil.pipeline import SafeguardConfig, Safeguarder

LABELS = ["safe", "racy", "unsafe"]


class _Net(torch.nn.Module):
    """conv → relu → conv → relu → global pool → linear; with ``nhwc`` it takes channels-last input."""

    def __init__(self, *, nhwc: bool, softmax: bool, n: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.nhwc, self.softmax = nhwc, softmax
        self.c1 = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.c2 = torch.nn.Conv2d(6, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        x = torch.relu(self.c2(torch.relu(self.c1(x))))
        z = self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))
        return torch.softmax(z, dim=1) if self.softmax else z


def _export(net: _Net, path: Path, size: tuple[int, int] = (24, 24), *, dynamic: bool = True) -> Path:
    shape = (1, *size, 3) if net.nhwc else (1, 3, *size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        # opset 17: onnx2torch (1.5) has no converters for opset-20 Constant / ReduceMean
        torch.onnx.export(net.eval(), torch.zeros(shape), str(path), dynamo=False, opset_version=17,
                          input_names=["image"],
                          output_names=["scores"],
                          dynamic_axes={"image": {0: "n"}, "scores": {0: "n"}} if dynamic else None)
    return path


def _card(**kw: Any) -> dict[str, Any]:
    card: dict[str, Any] = {"format": "onnx", "weights": "model.onnx", "labels": LABELS,
                            "unsafe_labels": ["racy", "unsafe"], "output": "logits"}
    card.update(kw)
    return card


def _write(folder: Path, card: dict[str, Any], name: str = "card.json") -> Path:
    p = folder / name
    p.write_text(json.dumps(card))
    return p


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (40, 30, 3), dtype=np.uint8), rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)]


def _reference(net: _Net, images: list[np.ndarray], *, bgr: bool, pixel_range: float, mean: list[float],
               std: list[float], size: tuple[int, int], resize_to: tuple[int, int] | None = None) -> np.ndarray:
    """The card's preprocessing written out by hand, then the torch module itself."""
    rows = []
    for img in images:
        h, w = resize_to or size
        arr = np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BILINEAR)) if img.shape[:2] != (h, w) else img
        if resize_to is not None:
            top, left = (h - size[0]) // 2, (w - size[1]) // 2
            arr = arr[top : top + size[0], left : left + size[1]]
        x = arr.astype(np.float32) * pixel_range / 255.0
        if bgr:
            x = x[:, :, ::-1]
        x = (x - np.array(mean, np.float32)) / np.array(std, np.float32)
        t = torch.from_numpy(np.ascontiguousarray(x))[None]
        if not net.nhwc:
            t = t.permute(0, 3, 1, 2)
        with torch.no_grad():
            out = net(t)
        rows.append((out if net.softmax else torch.softmax(out, 1)).numpy()[0])
    return np.stack(rows)


@pytest.mark.parametrize(
    ("layout", "color", "output"),
    [("NCHW", "RGB", "logits"), ("NHWC", "BGR", "probabilities"), ("NHWC", "RGB", "logits"),
     ("NCHW", "BGR", "probabilities")],
)
def test_card_in_each_layout_matches_the_module(tmp_path: Path, layout: str, color: str, output: str) -> None:
    net = _Net(nhwc=layout == "NHWC", softmax=output == "probabilities")
    _export(net, tmp_path / "model.onnx")
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    card = _card(layout=layout, color_order=color, output=output, mean=mean, std=std, input_size=24,
                 categories={"unsafe": "sexual"}, threshold=0.4)
    clf = load_classifier(_write(tmp_path, card))
    assert isinstance(clf, OnnxGradientClassifier) and isinstance(clf, Classifier)
    assert isinstance(clf, GradientClassifier)
    assert clf.name == "card" and clf.threshold == 0.4 and clf.labels == tuple(LABELS)
    assert clf.config["categories"] == {"unsafe": "sexual"} and clf.config["gradients"] is True
    images = _images()
    proba = clf.predict_proba(images)
    ref = _reference(net, images, bgr=color == "BGR", pixel_range=1.0, mean=mean, std=std, size=(24, 24))
    np.testing.assert_allclose(proba, ref, atol=1e-5)
    np.testing.assert_allclose(clf.unsafe_score(proba), ref[:, 1] + ref[:, 2], atol=1e-5)
    assert clf.predict_proba([]).shape == (0, 3)

    # torch path (channels first whatever the layout) = onnxruntime, and its score is the log-odds
    x = torch.cat([clf.torch_input(im) for im in images])
    assert x.shape == (2, 3, 24, 24)
    with torch.no_grad():
        out = clf.torch_module()(x).numpy()
    np.testing.assert_allclose(out if output == "probabilities" else torch.softmax(torch.from_numpy(out), 1).numpy(),
                               proba, atol=1e-5)
    s = clf.torch_unsafe_score(x)
    np.testing.assert_allclose(torch.sigmoid(s).detach().numpy(), clf.unsafe_score(proba), atol=1e-5)
    if output == "probabilities":
        assert clf._logits is not None  # the final softmax was tapped: no saturation
    for method in ("fullgrad", "gradcam"):
        att = attribute(images[0], clf, method)
        assert att.shape == (40, 30) and att.dtype == np.float32 and att.max() == pytest.approx(1.0)


def test_pixel_range_and_resize_crop(tmp_path: Path) -> None:
    net = _Net(nhwc=True, softmax=True)
    _export(net, tmp_path / "model.onnx", size=(16, 16))
    card = _card(layout="NHWC", color_order="BGR", output="probabilities", pixel_range=255,
                 mean=[104.0, 117.0, 123.0], resize="resize_crop", resize_size=20, input_size=16)
    clf = load_onnx_card(_write(tmp_path, card))
    assert clf.crop == (2, 2, 20, 20) and clf.input_size == (16, 16)
    images = _images()
    ref = _reference(net, images, bgr=True, pixel_range=255.0, mean=[104.0, 117.0, 123.0], std=[1, 1, 1],
                     size=(16, 16), resize_to=(20, 20))
    np.testing.assert_allclose(clf.predict_proba(images), ref, atol=1e-5)


def test_resize_crop_attribution_is_zero_outside_the_crop(tmp_path: Path) -> None:
    _export(_Net(nhwc=False, softmax=False), tmp_path / "model.onnx", size=(32, 32))
    card = _card(resize="resize_crop", resize_size=[40, 48], input_size=32)
    clf = load_onnx_card(_write(tmp_path, card))
    assert isinstance(clf, OnnxGradientClassifier) and clf.crop == (4, 8, 40, 48)
    full = clf.attribution_to_image(np.ones((32, 32), np.float32), (80, 96))
    y0, x0, y1, x1 = crop_box(clf.crop, clf.input_size, (80, 96))
    assert (y0, x0, y1, x1) == (8, 16, 72, 80)
    assert np.all(full[y0:y1, x0:x1] > 0.99) and full.sum() == pytest.approx((y1 - y0) * (x1 - x0), rel=1e-4)
    img = np.random.default_rng(1).integers(0, 256, (80, 96, 3), dtype=np.uint8)
    att = attribute(img, clf, "fullgrad")
    assert att[:y0].max() == 0 and att[y1:].max() == 0 and att[:, :x0].max() == 0 and att[:, x1:].max() == 0
    assert att[y0:y1, x0:x1].max() == pytest.approx(1.0)
    # …and obfuscating that border indeed changes nothing
    border = img.copy()
    border[:y0 - 1] = 0
    np.testing.assert_allclose(clf.predict_proba([border]), clf.predict_proba([img]), atol=1e-6)


def test_input_size_read_from_the_graph_and_static_batch(tmp_path: Path) -> None:
    _export(_Net(nhwc=False, softmax=False), tmp_path / "model.onnx", size=(20, 28), dynamic=False)
    clf = load_onnx_card(_write(tmp_path, _card()))  # no input_size: the graph's (20, 28)
    assert clf.input_size == (20, 28) and clf.batch_size == 1  # static batch 1: one image per call
    assert clf.predict_proba(_images()).shape == (2, 3)


def _add_unconvertible_op(path: Path) -> Path:
    """Put an identity ``Shrink`` (lambd=0), which onnx2torch cannot convert, after the input."""
    model = onnx.load(str(path))
    g = model.graph
    name = g.input[0].name
    for node in g.node:
        node.input[:] = ["shrunk" if i == name else i for i in node.input]
    g.node.insert(0, onnx.helper.make_node("Shrink", [name], ["shrunk"], lambd=0.0, bias=0.0))
    out = path.with_name("shrink.onnx")
    onnx.save(model, str(out))
    return out


def test_unconvertible_graph_falls_back_to_occlusion(tmp_path: Path) -> None:
    net = _Net(nhwc=False, softmax=False)
    _add_unconvertible_op(_export(net, tmp_path / "model.onnx"))
    path = _write(tmp_path, _card(weights="shrink.onnx", input_size=24, threshold=0.05))
    clf = load_classifier(path)
    assert type(clf) is OnnxClassifier and not isinstance(clf, GradientClassifier)
    assert clf.config["gradients"] is False and "Shrink" in clf.config["gradients_unavailable"]
    images = _images()
    ref = _reference(net, images, bgr=False, pixel_range=1.0, mean=[0, 0, 0], std=[1, 1, 1], size=(24, 24))
    np.testing.assert_allclose(clf.predict_proba(images), ref, atol=1e-5)  # scores still exact
    with pytest.raises(ModelLoadError, match="Shrink"):
        load_onnx_card(path, gradients=True)
    sg = Safeguarder(SafeguardConfig(models=(clf,), attribution="fullgrad", segmentation="slic",
                                     rationale=None, max_depth=3), classifiers=[clf])
    res = sg.run(images[0])
    assert res.unsafe and res.settings["attribution_used"] == ["card:occlusion"]


def test_gradients_false_skips_the_torch_path(tmp_path: Path) -> None:
    _export(_Net(nhwc=False, softmax=False), tmp_path / "model.onnx")
    clf = load_onnx_card(_write(tmp_path, _card(input_size=24)), gradients=False, threshold=0.3)
    assert type(clf) is OnnxClassifier and clf.threshold == 0.3


def test_card_round_trip_and_torch_loader_refuses(tmp_path: Path) -> None:
    _export(_Net(nhwc=False, softmax=False), tmp_path / "model.onnx")
    p = write_model_card(tmp_path / "written.json", _card(input_size=24))
    card = read_model_card(p)
    assert card["layout"] == "NCHW" and card["resize"] == "squash" and card["name"] == "written"
    from veil.classify.card import load_model_card

    with pytest.raises(ModelLoadError, match="load_classifier"):
        load_model_card(p)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"weights": "missing.onnx"}, r"weights.*does not exist"),
        ({"output": None}, r"'output'.*missing"),
        ({"output": "scores"}, r"'output'.*must be one of"),
        ({"layout": "CHW"}, r"'layout'.*must be one of"),
        ({"color_order": "GRB"}, r"'color_order'"),
        ({"pixel_range": 0}, r"'pixel_range'.*positive"),
        ({"mean": [0.5, 0.5]}, r"'mean'.*3 numbers"),
        ({"std": [1, 0, 1]}, r"'std'.*positive"),
        ({"resize": "resize_crop", "input_size": 24}, r"'resize_size'.*required"),
        ({"resize": "resize_crop", "resize_size": 20, "input_size": 24}, r"larger than resize_size"),
        ({"resize_size": 30}, r"'resize_size'.*only applies"),
        ({"input_size": 7}, r"'input_size'.*at least 8"),
        ({"labels": ["safe", "unsafe"], "unsafe_labels": ["unsafe"]}, r"'labels'.*2 entries.*3 classes"),
        ({"unsafe_labels": ["nsfw"]}, r"'unsafe_labels'.*not in labels"),
        ({"input_size": 32}, r"'input_size'.*\[32, 32\].*\[24, 24\]"),
        ({"layout": "NHWC"}, r"'layout'.*NHWC.*24 channels"),
        ({"input_name": "pixels"}, r"'input_name'.*not an input.*image"),
        ({"format": "tflite"}, r"'format'"),
    ],
)
def test_card_errors_name_the_key_and_the_fix(tmp_path: Path, overrides: dict[str, Any], match: str) -> None:
    _export(_Net(nhwc=False, softmax=False), tmp_path / "model.onnx", dynamic=False)
    card = {k: v for k, v in {**_card(), **overrides}.items() if v is not None}
    with pytest.raises(ModelLoadError, match=match) as err:
        load_classifier(_write(tmp_path, card))
    assert "fix:" in str(err.value) or "format" in overrides


def test_target_layers_default_and_override(tmp_path: Path) -> None:
    _export(_Net(nhwc=True, softmax=True), tmp_path / "model.onnx")
    clf = load_onnx_card(_write(tmp_path, _card(layout="NHWC", output="probabilities", input_size=24)))
    assert isinstance(clf, OnnxGradientClassifier)
    (layer,) = clf.cam_target_layers()
    assert isinstance(layer, torch.nn.ReLU)  # the last conv's activation, not the conv itself
    names = clf._last_stage_modules()
    clf.config["target_layers"] = [names[0]]
    assert isinstance(clf.cam_target_layers()[0], torch.nn.Conv2d)
    clf.config["target_layers"] = ["nope"]
    with pytest.raises(InvalidParameterError, match="not modules of the converted graph"):
        clf.cam_target_layers()


def test_onnx_classifier_from_dict_resolves_weights(tmp_path: Path) -> None:
    _export(_Net(nhwc=False, softmax=False), tmp_path / "model.onnx")
    clf = onnx_classifier(_card(name="inline", input_size=24), base_dir=tmp_path)
    assert clf.name == "inline" and clf.onnx_path == tmp_path / "model.onnx"
    with pytest.raises(ModelLoadError, match="does not exist"):
        onnx_classifier(_card(input_size=24), base_dir=tmp_path / "elsewhere")
    with pytest.raises(InvalidParameterError, match="threshold"):
        onnx_classifier(_card(input_size=24), base_dir=tmp_path, threshold=1.5)


class _TwoHeads(torch.nn.Module):
    """Returns (pooled features, logits): the classifier output is the second graph output."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _Net(nhwc=False, softmax=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1), self.net(x)


def test_output_name_picks_the_classifier_output(tmp_path: Path) -> None:
    model = _TwoHeads().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, 3, 24, 24), str(tmp_path / "model.onnx"), dynamo=False,
                          opset_version=17, input_names=["image"], output_names=["features", "scores"],
                          dynamic_axes={"image": {0: "n"}, "features": {0: "n"}, "scores": {0: "n"}})
    clf = load_onnx_card(_write(tmp_path, _card(output_name="scores")))
    assert isinstance(clf, OnnxGradientClassifier)
    images = _images()
    ref = _reference(model.net, images, bgr=False, pixel_range=1.0, mean=[0, 0, 0], std=[1, 1, 1], size=(24, 24))
    np.testing.assert_allclose(clf.predict_proba(images), ref, atol=1e-5)
    x = torch.cat([clf.torch_input(im) for im in images])
    with torch.no_grad():
        np.testing.assert_allclose(torch.softmax(clf.torch_module()(x), 1).numpy(), ref, atol=1e-5)
    # Without output_name the first output (3 pooled channels, also 3 wide) would be read instead.
    first = load_onnx_card(_write(tmp_path, _card(), name="first.json"), gradients=False)
    assert not np.allclose(first.predict_proba(images), ref, atol=1e-3)
    with pytest.raises(ModelLoadError, match=r"'output_name'.*not an output.*features"):
        load_onnx_card(_write(tmp_path, _card(output_name="logits"), name="bad.json"))


def test_dynamic_spatial_size_needs_input_size(tmp_path: Path) -> None:
    net = _Net(nhwc=False, softmax=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), torch.zeros(1, 3, 24, 24), str(tmp_path / "model.onnx"), dynamo=False,
                          opset_version=17, input_names=["image"], output_names=["scores"],
                          dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "scores": {0: "n"}})
    with pytest.raises(ModelLoadError, match=r"'input_size'.*not set.*no static height and width"):
        load_onnx_card(_write(tmp_path, _card()))
    clf = load_onnx_card(_write(tmp_path, _card(input_size=[20, 28]), name="sized.json"))
    assert clf.input_size == (20, 28)
    images = _images()
    ref = _reference(net, images, bgr=False, pixel_range=1.0, mean=[0, 0, 0], std=[1, 1, 1], size=(20, 28))
    np.testing.assert_allclose(clf.predict_proba(images), ref, atol=1e-5)
