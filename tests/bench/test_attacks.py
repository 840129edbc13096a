"""Attacks on a linear model whose gradients are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from veil.bench.attacks import (
    ATTACKS,
    deepfool,
    evaluate_robustness,
    fgsm,
    gaussian_noise,
    has_gradients,
    pgd,
    select_correct,
)
from veil.classify.torch import TorchClassifier
from veil.errors import InvalidParameterError, UnknownNameError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def linear_margin(w: torch.Tensor, b: float):
    return lambda z: z.flatten(1) @ w + b


def test_fgsm_moves_along_gradient_sign_by_eps():
    w = torch.tensor([1.0, -2.0, 0.5, 0.0])
    x = torch.zeros(1, 4)
    adv = fgsm(linear_margin(w, 1.0), x, 0.1)
    assert torch.allclose(adv, torch.tensor([[-0.1, 0.1, -0.1, 0.0]]))
    # margin drops by eps * ||w||_1 = 0.35
    assert float(linear_margin(w, 1.0)(adv)) == pytest.approx(1.0 - 0.35)
    assert torch.equal(x, torch.zeros(1, 4))  # input untouched


def test_pgd_stays_in_ball_and_reaches_the_optimum():
    w = torch.tensor([1.0, -2.0, 0.5, 3.0])
    x = torch.randn(3, 4)
    adv = pgd(linear_margin(w, 0.0), x, 0.2, steps=100)
    assert float((adv - x).abs().max()) <= 0.2 + 1e-6
    # for a linear margin the L∞ optimum is x - eps * sign(w)
    assert torch.allclose(adv, x - 0.2 * w.sign(), atol=1e-5)


def test_deepfool_finds_minimal_linf_crossing_and_respects_eps():
    w = torch.tensor([1.0, 1.0, 1.0, 1.0])
    x = torch.zeros(1, 4)
    m = linear_margin(w, 0.4)  # boundary at L∞ distance 0.1
    big = deepfool(m, x, 1.0)
    assert float(m(big)) < 0 and float(big.abs().max()) == pytest.approx(0.1 * 1.02, rel=1e-3)
    small = deepfool(m, x, 0.05)
    assert float(small.abs().max()) <= 0.05 + 1e-7 and float(m(small)) > 0


def test_noise_has_l2_norm_eps_and_is_seeded():
    x = torch.zeros(2, 3, 5, 5)
    a, b = gaussian_noise(x, 0.3, rng=1), gaussian_noise(x, 0.3, rng=1)
    assert torch.equal(a, b)
    assert torch.allclose(a.flatten(1).norm(dim=1), torch.full((2,), 0.3))
    with pytest.raises(InvalidParameterError, match="eps"):
        gaussian_noise(x, -1.0)


@pytest.fixture(scope="module")
def linear_classifier():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    return TorchClassifier(net, ["safe", "unsafe"], ["unsafe"], input_size=8, mean=(0.5,) * 3,
                           std=(0.5,) * 3, name="linear")


def _images(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(n)]


def test_attacks_lower_accuracy_but_tiny_noise_does_not(linear_classifier):
    clf = linear_classifier
    images = _images()
    labels = (clf.unsafe_score(clf.predict_proba(images)) > clf.threshold).astype(int)  # all correct
    assert has_gradients(clf)
    rows = evaluate_robustness(clf, images, labels, attacks=ATTACKS.names(), eps=[1e-5, 0.5], pgd_steps=20)
    acc = {(r["attack"], r["eps"]): r["robust_accuracy"] for r in rows}
    assert all(r["clean_accuracy"] == 1.0 and r["n"] == 24 for r in rows)
    assert acc[("noise", 1e-5)] == 1.0
    for attack in ("fgsm", "pgd", "deepfool"):
        assert acc[(attack, 0.5)] < 0.5, attack
    assert acc[("pgd", 0.5)] <= acc[("fgsm", 0.5)] + 1e-9
    assert {r["norm"] for r in rows if r["attack"] == "noise"} == {"L2"}
    # parameters are left as they were
    assert all(p.requires_grad for p in clf.module.parameters())


def test_unknown_attack_and_selection():
    with pytest.raises(UnknownNameError, match="valid names: deepfool, fgsm, noise, pgd"):
        ATTACKS.get("cw")
    idx = select_correct([1, 0, 1, 0, 1], [1, 0, 0, 0, 1], 2, rng=3)
    assert len(idx) == 2 and set(idx.tolist()) <= {0, 1, 3, 4}
    assert select_correct([1, 0], [1, 0], 5, eligible=[True, False]).tolist() == [0]
