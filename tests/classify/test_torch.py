"""TorchClassifier: validation, unsafe score, gradient path and batching on a tiny seeded CNN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from veil.classify import Classifier, GradientClassifier
from veil.classify.torch import TorchClassifier
from veil.errors import InvalidParameterError

LABELS = ["safe", "racy", "unsafe", "other"]


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, len(LABELS)),
    )


def _clf(**kwargs) -> TorchClassifier:
    kw = dict(input_size=16, batch_size=2)
    kw.update(kwargs)
    return TorchClassifier(_net(), LABELS, ["racy", "unsafe"], **kw)


def _images(n: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = [(16, 16), (20, 31), (40, 12), (16, 17), (64, 64), (9, 9)]
    return [rng.integers(0, 256, (*shapes[i % len(shapes)], 3), dtype=np.uint8) for i in range(n)]


def test_protocols() -> None:
    clf = _clf()
    assert isinstance(clf, Classifier) and isinstance(clf, GradientClassifier)


@pytest.mark.parametrize(
    ("labels", "unsafe", "kwargs", "match"),
    [
        (["a", "a"], ["a"], {}, "unique"),
        (["a", "b"], ["c"], {}, "subset"),
        (["a", "b"], [], {}, "non-empty"),
        (["a", "b"], ["b"], {"threshold": 1.0}, "threshold"),
        (["a", "b"], ["b"], {"threshold": 0.0}, "threshold"),
        (["a", "b"], ["b"], {"input_size": 4}, "input_size"),
        (["a", "b"], ["b"], {"mean": (0.5, 0.5)}, "mean"),
        (["a", "b"], ["b"], {"std": (0.2, 0.0, 0.2)}, "std"),
    ],
)
def test_validation_errors(labels, unsafe, kwargs, match) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        TorchClassifier(_net(), labels, unsafe, **kwargs)


def test_predict_proba_is_a_distribution_and_batches_like_single() -> None:
    clf = _clf()
    images = _images(5)
    batched = clf.predict_proba(images)
    assert batched.shape == (5, 4) and batched.dtype == np.float32
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-5)
    single = np.concatenate([clf.predict_proba([im]) for im in images])
    np.testing.assert_allclose(batched, single, atol=1e-6)
    assert clf.predict_proba([]).shape == (0, 4)


def test_unsafe_score_sums_unsafe_probabilities() -> None:
    clf = _clf()
    proba = np.array([[0.1, 0.2, 0.3, 0.4], [0.7, 0.0, 0.1, 0.2]], np.float32)
    np.testing.assert_allclose(clf.unsafe_score(proba), [0.5, 0.1], atol=1e-7)


def test_torch_unsafe_score_is_log_odds_of_unsafe_probability() -> None:
    clf = _clf()
    images = _images(6)
    p = clf.unsafe_score(clf.predict_proba(images))
    x = torch.cat([clf.torch_input(im) for im in images])
    with torch.no_grad():
        s = clf.torch_unsafe_score(x).numpy()
    np.testing.assert_allclose(1 / (1 + np.exp(-s)), p, atol=1e-5)
    assert (np.argsort(s) == np.argsort(p)).all()  # monotone


def test_torch_unsafe_score_moves_with_the_unsafe_logit() -> None:
    clf = _clf()
    x = clf.torch_input(_images(1)[0])
    head = clf.module[-1]
    scores = []
    with torch.no_grad():
        for bias in (-2.0, 0.0, 2.0, 4.0):
            head.bias[2] = bias  # raise the "unsafe" logit only
            scores.append(float(clf.torch_unsafe_score(x)))
    assert scores == sorted(scores) and len(set(scores)) == 4


def test_gradients_flow_to_input() -> None:
    clf = _clf()
    x = clf.torch_input(_images(1)[0]).requires_grad_(True)
    clf.torch_unsafe_score(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_all_labels_unsafe_gives_log_probability_one() -> None:
    clf = TorchClassifier(_net(), LABELS, LABELS, input_size=16)
    with torch.no_grad():
        s = clf.torch_unsafe_score(clf.torch_input(_images(1)[0]))
    assert abs(float(s)) < 1e-5


def test_torch_input_matches_preprocess_and_leaves_image_alone() -> None:
    clf = _clf()
    im = _images(3)[2]
    before = im.copy()
    x = clf.torch_input(im)
    assert x.shape == (1, 3, 16, 16)
    torch.testing.assert_close(x, clf.preprocess([im]))
    np.testing.assert_array_equal(im, before)


def test_cam_target_layers_and_attribution_mapping() -> None:
    clf = _clf()
    layers = clf.cam_target_layers()
    assert len(layers) == 1 and any(isinstance(m, torch.nn.Conv2d) for m in layers[0].modules())
    net = _net()
    explicit = TorchClassifier(net, LABELS, ["unsafe"], input_size=16, target_layers=[net[2]])
    assert explicit.cam_target_layers() == [net[2]]
    out = clf.attribution_to_image(np.random.default_rng(0).random((16, 16)).astype(np.float32), (40, 24))
    assert out.shape == (40, 24) and out.dtype == np.float32


def test_model_without_conv_needs_explicit_target_layers() -> None:
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    clf = TorchClassifier(net, ["safe", "unsafe"], ["unsafe"], input_size=8)
    with pytest.raises(InvalidParameterError, match="target_layers"):
        clf.cam_target_layers()


def test_a_batch_of_one_size_is_resized_at_once_with_squashs_values() -> None:
    from veil.classify.torch import preprocess_images, squash

    rng = np.random.default_rng(3)
    same = [rng.integers(0, 256, (90, 120, 3), dtype=np.uint8) for _ in range(4)]
    mixed = [*same[:2], rng.integers(0, 256, (50, 33, 3), dtype=np.uint8)]
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    for batch in (same, mixed, same[:1]):
        x = preprocess_images(batch, 32, mean, std)
        want = (torch.stack([squash(a, 32) for a in batch]) - m) / s
        assert x.shape == (len(batch), 3, 32, 32) and x.is_contiguous()
        torch.testing.assert_close(x, want, rtol=0, atol=0)
    # the resize runs on the 8-bit pixels: within one grey level of a float resize, never more
    f = torch.nn.functional.interpolate(torch.from_numpy(same[0]).permute(2, 0, 1)[None].float() / 255, size=(32, 32),
                                        mode="bilinear", align_corners=False, antialias=True)[0]
    assert float((squash(same[0], 32) - f).abs().max()) <= 1.0 / 255 + 1e-6
