"""Attribution: the contract over every registry entry, FullGrad against pytorch-grad-cam,
and a hand-built network that keys on a planted red patch (no training needed)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from veil.attribution import ATTRIBUTIONS, attribute, combine, normalize
from veil.attribution.cam import UnsafeScoreModule
from veil.attribution.fullgrad import effective_bias, fullgrad_saliency
from veil.classify.base import Classifier, GradientClassifier
from veil.classify.torch import TorchClassifier
from veil.errors import (
    CapabilityError,
    InvalidImageError,
    InvalidParameterError,
    UnknownNameError,
)

METHODS = ATTRIBUTIONS.names()
GRADIENT_METHODS = [n for n in METHODS if ATTRIBUTIONS.get(n).requires_gradients]
FAST = {"occlusion": {"stride": 0.25}}  # fewer forward passes; the contract is the same
SIZE = 48
PATCH = (slice(26, 40), slice(8, 22))  # rows, cols of the planted red patch


# -- fixtures ---------------------------------------------------------------------------------
def red_patch_net() -> torch.nn.Sequential:
    """Channel 0 fires on red pixels (r - g - b > 0.5), channel 1 on brightness; only channel 0
    feeds the unsafe logit, through a global average, so the score grows with the red area."""
    conv = torch.nn.Conv2d(3, 2, 3, padding=1)
    head = torch.nn.Linear(2, 2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, :, 1, 1] = torch.tensor([1.0, -1.0, -1.0])
        conv.weight[1, :, 1, 1] = torch.tensor([1.0, 1.0, 1.0]) / 3
        conv.bias.copy_(torch.tensor([-0.5, 0.0]))
        head.weight.copy_(torch.tensor([[0.0, 0.0], [100.0, 0.0]]))
        head.bias.copy_(torch.tensor([0.0, -1.0]))
    return torch.nn.Sequential(
        conv, torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), head
    )


def red_patch_classifier() -> TorchClassifier:
    net = red_patch_net()
    return TorchClassifier(net, ["safe", "unsafe"], ["unsafe"], input_size=SIZE,
                           mean=(0, 0, 0), std=(1, 1, 1), name="red", target_layers=[net[1]])


def planted_image(seed: int = 0) -> np.ndarray:
    """Muted noise (never red enough to fire) with a red square at ``PATCH``."""
    rng = np.random.default_rng(seed)
    img = rng.integers(80, 180, (SIZE, SIZE, 3)).astype(np.uint8)
    img[PATCH] = (230, 20, 20)
    return img


class ProbaOnly:
    """A Classifier with no gradient path: only ``predict_proba`` and ``unsafe_score``."""

    def __init__(self, inner: TorchClassifier) -> None:
        self._inner = inner
        self.name, self.labels, self.unsafe_labels = "proba-only", inner.labels, inner.unsafe_labels
        self.threshold, self.config = inner.threshold, {}

    def predict_proba(self, images: Any) -> np.ndarray:
        return self._inner.predict_proba(images)

    def unsafe_score(self, proba: np.ndarray) -> np.ndarray:
        return self._inner.unsafe_score(proba)


def randomize_batchnorm(net: torch.nn.Module, seed: int) -> None:
    """Random-init BatchNorm has zero effective bias; give it statistics so FullGrad's bias terms count."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d) and m.running_mean is not None:
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(c, generator=g) * 0.5)


def small_cnn() -> torch.nn.Module:
    """Convs with and without bias, BatchNorm, pooling and a non-square input path."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), torch.nn.BatchNorm2d(16),
        torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 3),
    )


@pytest.fixture(scope="module")
def random_classifier() -> TorchClassifier:
    torch.manual_seed(0)
    net = small_cnn()
    randomize_batchnorm(net, 0)
    return TorchClassifier(net, ["a", "b", "c"], ["b", "c"], input_size=32, name="random")


# -- the contract, over every registered method ---------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_contract(method: str, random_classifier: TorchClassifier) -> None:
    image = np.random.default_rng(1).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    before = image.copy()
    image.setflags(write=False)  # the pipeline hands images over read-only
    params = {k: v.detach().clone() for k, v in random_classifier.module.state_dict().items()}
    a = attribute(image, random_classifier, method, **FAST.get(method, {}))
    b = attribute(image, random_classifier, method, **FAST.get(method, {}))
    assert a.shape == (40, 52) and a.dtype == np.float32
    assert np.all(np.isfinite(a)) and a.min() >= 0.0 and a.max() <= 1.0
    assert a.max() == 1.0 or a.max() == 0.0  # min-max normalised, or all zero
    np.testing.assert_array_equal(image, before)
    np.testing.assert_array_equal(a, b)
    # The model is left as it was: weights, eval mode, no gradients, no hooks, layers in place.
    net = random_classifier.module
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, params[k], rtol=0, atol=0)
    assert all(p.grad is None for p in net.parameters())
    assert not any(m.training for m in net.modules())
    assert not any(m._forward_hooks for m in net.modules())
    assert [type(m) for m in net] == [type(m) for m in small_cnn()]


@pytest.mark.parametrize("method", METHODS)
def test_planted_patch_is_found(method: str) -> None:
    clf = red_patch_classifier()
    image = planted_image()
    assert clf.unsafe_score(clf.predict_proba([image]))[0] > 0.5
    m = attribute(image, clf, method)
    inside = np.zeros(m.shape, bool)
    inside[PATCH] = True
    assert m[inside].mean() > 3 * m[~inside].mean(), method
    near = np.zeros(m.shape, bool)  # the patch grown by 2 px: bilinear maps may peak on its rim
    near[PATCH[0].start - 2 : PATCH[0].stop + 2, PATCH[1].start - 2 : PATCH[1].stop + 2] = True
    assert near.flat[np.argmax(m)], method


# -- FullGrad against pytorch-grad-cam ---------------------------------------------------------
def reference_fullgrad(clf: TorchClassifier, x: torch.Tensor) -> np.ndarray:
    from pytorch_grad_cam import FullGrad
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = FullGrad(UnsafeScoreModule(clf), [])
    try:
        return cam(input_tensor=x.clone(), targets=[ClassifierOutputTarget(0)])[0]
    finally:
        cam.activations_and_grads.release()
        for p in clf.module.parameters():
            p.grad = None


@pytest.mark.parametrize("arch", ["resnet18", "small_cnn"])
def test_fullgrad_matches_pytorch_grad_cam(arch: str) -> None:
    import torchvision

    torch.manual_seed(0)
    if arch == "resnet18":
        net, size = torchvision.models.resnet18(weights=None, num_classes=2), 96
    else:
        net, size = small_cnn(), 40
    randomize_batchnorm(net, 1)
    labels = ["safe", "unsafe", "x"][: 2 if arch == "resnet18" else 3]
    clf = TorchClassifier(net, labels, ["unsafe"], input_size=size)
    image = np.random.default_rng(2).integers(0, 256, (size, size, 3), dtype=np.uint8)
    x = clf.torch_input(image)
    ours = fullgrad_saliency(clf, x)[0].numpy()
    ref = reference_fullgrad(clf, x)
    corr = np.corrcoef(ours.ravel(), ref.ravel())[0, 1]
    assert corr > 0.999, corr
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    # Through the public API (image size = input size, so attribution_to_image only renormalises).
    np.testing.assert_allclose(attribute(image, clf, "fullgrad"), normalize(ref), atol=1e-3)


def test_fullgrad_skips_layers_without_bias_and_handles_reuse() -> None:
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    assert effective_bias(torch.nn.Conv2d(3, 3, 3, bias=False)) is None
    assert effective_bias(torch.nn.BatchNorm2d(3, track_running_stats=False)) is None
    assert effective_bias(torch.nn.Linear(3, 3)) is None
    bn = torch.nn.BatchNorm2d(3, affine=False).eval()
    bn.running_mean.fill_(1.0)
    torch.testing.assert_close(effective_bias(bn), torch.full((3,), -1.0 / np.sqrt(1 + bn.eps)))

    class Reuse(torch.nn.Module):  # the same conv applied twice: two bias terms
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = conv, bn
            self.head = torch.nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():  # computed without grad: contributes no term, must not break
                _ = self.conv(x)
            return self.head(self.bn(self.conv(torch.relu(self.conv(x)))).mean(dim=(2, 3)))

    clf = TorchClassifier(Reuse(), ["safe", "unsafe"], ["unsafe"], input_size=16)
    m = attribute(np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8), clf)
    assert m.shape == (20, 20) and m.max() == 1.0
    assert not conv._forward_hooks and not bn._forward_hooks


def test_fullgrad_releases_hooks_on_error() -> None:
    class Broken(TorchClassifier):
        def torch_unsafe_score(self, x: torch.Tensor) -> torch.Tensor:
            self.module(x)
            raise RuntimeError("boom")

    net = red_patch_net()
    clf = Broken(net, ["safe", "unsafe"], ["unsafe"], input_size=SIZE)
    with pytest.raises(RuntimeError, match="boom"):
        attribute(planted_image(), clf, "fullgrad")
    assert not any(m._forward_hooks for m in net.modules())


# -- gradient-free and capability checks ---------------------------------------------------------
def test_occlusion_needs_no_gradients() -> None:
    clf = ProbaOnly(red_patch_classifier())
    assert isinstance(clf, Classifier) and not isinstance(clf, GradientClassifier)
    image = planted_image()
    for options in ({}, {"fill": "blur", "patch_size": 0.2}, {"fill": (0, 0, 0), "log_odds": True}):
        m = attribute(image, clf, "occlusion", batch_size=7, stride=0.125, **options)
        inside = np.zeros(m.shape, bool)
        inside[PATCH] = True
        assert m[inside].mean() > 3 * m[~inside].mean(), options


def test_occlusion_batch_size_does_not_change_the_map() -> None:
    clf, image = red_patch_classifier(), planted_image(3)
    a = attribute(image, clf, "occlusion", batch_size=1, stride=0.1)
    np.testing.assert_array_equal(a, attribute(image, clf, "occlusion", batch_size=64, stride=0.1))


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_gradient_methods_refuse_classifiers_without_gradients(method: str) -> None:
    with pytest.raises(CapabilityError, match="occlusion"):
        attribute(planted_image(), ProbaOnly(red_patch_classifier()), method)


def test_occlusion_refuses_non_classifiers() -> None:
    with pytest.raises(CapabilityError):
        attribute(planted_image(), object(), "occlusion")


def test_ablationcam_batch_size_and_options() -> None:
    clf, image = red_patch_classifier(), planted_image(4)
    a = attribute(image, clf, "ablationcam", batch_size=1)
    np.testing.assert_allclose(a, attribute(image, clf, "ablationcam", batch_size=64), atol=1e-6)
    for method in ("gradcam", "ablationcam"):
        m = attribute(image, clf, method, eigen_smooth=True, aug_smooth=True)
        assert m.shape == (SIZE, SIZE) and 0.0 <= m.min() <= m.max() <= 1.0


# -- validation ------------------------------------------------------------------------------
def test_unknown_method_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError) as err:
        attribute(planted_image(), red_patch_classifier(), "lime")
    for name in METHODS:
        assert name in str(err.value)


@pytest.mark.parametrize(
    "image",
    [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((0, 8, 3), np.uint8),
     np.zeros((8, 8, 3), np.float32), [[0, 0, 0]]],
)
def test_bad_images_are_rejected(image: Any) -> None:
    with pytest.raises(InvalidImageError):
        attribute(image, red_patch_classifier(), "fullgrad")


@pytest.mark.parametrize(
    ("method", "options"),
    [("fullgrad", {"batch_size": 2}), ("occlusion", {"patch_size": 0}),
     ("occlusion", {"patch_size": 1.5}), ("occlusion", {"stride": -0.1}),
     ("occlusion", {"fill": "noise"}), ("occlusion", {"fill": (300, 0, 0)}),
     ("occlusion", {"batch_size": 0}), ("ablationcam", {"batch_size": 1.5}),
     ("ablationcam", {"ratio_channels_to_ablate": 0.0})],
)
def test_bad_options_are_rejected(method: str, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameterError):
        attribute(planted_image(), red_patch_classifier(), method, **options)


def test_combine() -> None:
    a = np.array([[0.0, 1.0], [0.2, 0.4]], np.float32)
    b = np.array([[0.5, 0.0], [0.2, 1.0]], np.float32)
    np.testing.assert_array_equal(combine([a, b]), np.maximum(a, b))
    np.testing.assert_allclose(combine([a, b], how="mean"), (a + b) / 2)
    assert combine([a]).dtype == np.float32
    for bad in ([], [a, np.zeros((3, 2))], [a * 2], [np.zeros(4)]):
        with pytest.raises(InvalidParameterError):
            combine(bad)
    with pytest.raises(InvalidParameterError):
        combine([a, b], how="median")  # type: ignore[arg-type]


def test_normalize_constant_map_is_zero() -> None:
    assert not normalize(np.full((3, 3), 7.0)).any()
    np.testing.assert_array_equal(normalize(np.array([[1.0, 3.0]])), [[0.0, 1.0]])


@pytest.mark.parametrize("method", ["fullgrad", "gradcam"])
def test_gradient_methods_work_under_inference_mode(method: str) -> None:
    clf, image = red_patch_classifier(), planted_image()
    expected = attribute(image, clf, method)
    with torch.inference_mode():
        np.testing.assert_array_equal(attribute(image, clf, method), expected)
    with torch.no_grad():
        np.testing.assert_array_equal(attribute(image, clf, method), expected)


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_frozen_weights_still_give_maps(method: str) -> None:
    clf, image = red_patch_classifier(), planted_image()
    expected = attribute(image, clf, method)
    for p in clf.module.parameters():
        p.requires_grad_(False)
    np.testing.assert_allclose(attribute(image, clf, method), expected, atol=1e-6)
