"""Robustness of safety classifiers: Gaussian noise, FGSM, PGD and DeepFool in plain torch.

Attacks work in the classifier's *normalized input space* (the tensor
``torch_input(image)`` returns) on its differentiable unsafe log-odds
``torch_unsafe_score(x)``: an image is called unsafe when that score exceeds
``logit(threshold)``. Every attack pushes a correctly classified image across that
boundary, i.e. minimizes the *margin* ``sign · (score − logit(threshold))`` with
``sign = +1`` for unsafe and ``−1`` for safe images.

=========  ====  ==============================================================
attack     norm  perturbation
=========  ====  ==============================================================
noise      L2    Gaussian noise rescaled to L2 norm ε (no gradients needed)
fgsm       L∞    one signed-gradient step of size ε
pgd        L∞    100 signed-gradient steps of 2.5·ε/steps, projected on the ε-ball
deepfool   L∞    minimal linearized steps until the label flips, clipped to ε
=========  ====  ==============================================================

When the classifier exposes its normalization (``mean``/``std`` like
:class:`~veil.classify.torch.TorchClassifier`), adversarial inputs are clamped to
the image range. A classifier without gradients gets the noise attack in pixel space
([0, 1], quantized to ``uint8`` by the classifier) and a note for the others.

Examples
--------
>>> import torch
>>> x = torch.zeros(1, 4)
>>> margin = lambda z: 1.0 - z.sum(dim=1)          # correct while sum(z) < 1
>>> bool(margin(fgsm(margin, x, 0.3)) < 0)          # 4 · 0.3 > 1: flipped
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from veil.errors import InvalidParameterError
from veil.registry import Registry

# numpy and torch are imported where used: the registry (and `veil --help`, which lists the
# attacks) must not pay for them.
if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

__all__ = [
    "ATTACKS",
    "Attack",
    "GRADIENT_ATTACKS",
    "deepfool",
    "evaluate_robustness",
    "fgsm",
    "gaussian_noise",
    "has_gradients",
    "pgd",
    "select_correct",
]

Margin = Callable[["torch.Tensor"], "torch.Tensor"]
Bounds = tuple["torch.Tensor", "torch.Tensor"] | None


def _check_eps(eps: float) -> float:
    if not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise InvalidParameterError(f"eps must be a finite number >= 0, got {eps!r}")
    return float(eps)


def _clamp(x: torch.Tensor, bounds: Bounds) -> torch.Tensor:
    import torch

    if bounds is None:
        return x
    return torch.maximum(torch.minimum(x, bounds[1]), bounds[0])


def _grad(margin: Margin, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    with torch.enable_grad():
        z = x.detach().clone().requires_grad_(True)
        m = margin(z)
        (g,) = torch.autograd.grad(m.sum(), z)
    return m.detach(), g.detach()


def gaussian_noise(x: torch.Tensor, eps: float, *, rng: np.random.Generator | int | None = None,
                   bounds: Bounds = None) -> torch.Tensor:
    """``x`` plus Gaussian noise rescaled to L2 norm ``eps`` per sample (input untouched).

    Examples
    --------
    >>> import torch
    >>> d = gaussian_noise(torch.zeros(2, 3, 4, 4), 0.5, rng=0)
    >>> [round(float(v), 4) for v in d.flatten(1).norm(dim=1)]
    [0.5, 0.5]
    """
    import numpy as np
    import torch

    eps = _check_eps(eps)
    noise = torch.from_numpy(np.random.default_rng(rng).standard_normal(tuple(x.shape)).astype(np.float32)).to(x)
    norms = noise.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
    return _clamp(x + noise / norms * eps, bounds).detach()


def fgsm(margin: Margin, x: torch.Tensor, eps: float, *, bounds: Bounds = None) -> torch.Tensor:
    """Fast gradient sign method: one L∞ step of size ``eps`` down the margin."""
    eps = _check_eps(eps)
    _, g = _grad(margin, x)
    return _clamp(x - eps * g.sign(), bounds).detach()


def pgd(margin: Margin, x: torch.Tensor, eps: float, *, steps: int = 100, step_size: float | None = None,
        bounds: Bounds = None) -> torch.Tensor:
    """Projected gradient descent in the L∞ ball of radius ``eps`` (no random start).

    ``step_size`` defaults to ``2.5 · eps / steps``. The best (lowest-margin) iterate of
    each sample is returned, so more steps never make the attack weaker.
    """
    import torch

    eps = _check_eps(eps)
    if steps < 1:
        raise InvalidParameterError(f"steps must be at least 1, got {steps}")
    alpha = 2.5 * eps / steps if step_size is None else float(step_size)
    x0 = x.detach()
    adv = x0.clone()
    best = x0.clone()
    best_m = torch.full((x.shape[0],), float("inf"), device=x.device)
    for _ in range(steps):
        m, g = _grad(margin, adv)
        better = m < best_m
        best[better] = adv[better]
        best_m = torch.where(better, m, best_m)
        adv = adv - alpha * g.sign()
        adv = _clamp(torch.maximum(torch.minimum(adv, x0 + eps), x0 - eps), bounds)
    m = margin(adv).detach()
    better = m < best_m
    best[better] = adv[better]
    return best.detach()


def deepfool(margin: Margin, x: torch.Tensor, eps: float, *, steps: int = 50, overshoot: float = 0.02,
             bounds: Bounds = None) -> torch.Tensor:
    """DeepFool (binary, L∞): linearized minimal steps across the boundary, then clipped to ``eps``.

    Each step moves a still-correct sample by ``(margin / ‖∇‖₁) · sign(∇)``; the total
    perturbation is scaled by ``1 + overshoot`` and clipped to the L∞ ball of ``eps``.
    """
    import torch

    eps = _check_eps(eps)
    x0 = x.detach()
    delta = torch.zeros_like(x0)
    for _ in range(steps):
        m, g = _grad(margin, x0 + delta * (1 + overshoot))
        active = m > 0
        if not bool(active.any()):
            break
        l1 = g.flatten(1).abs().sum(dim=1).clamp_min(1e-12)
        step = (m.clamp_min(0) / l1 + 1e-6).view(-1, *([1] * (x.dim() - 1))) * (-g.sign())
        delta = delta + step * active.view(-1, *([1] * (x.dim() - 1)))
    delta = (delta * (1 + overshoot)).clamp(-eps, eps)
    return _clamp(x0 + delta, bounds).detach()


@dataclass(frozen=True)
class Attack:
    """One registered attack: its norm, whether it needs gradients, and how to run it.

    ``run(margin, x, eps, bounds=…, seed=…, pgd_steps=…)`` perturbs a batch ``x`` in the
    classifier's normalized input space; ``note`` is appended to the report's note.
    """

    name: str
    norm: str
    requires_gradients: bool
    run: Callable[..., torch.Tensor]
    note: Callable[[int], str] = field(default=lambda pgd_steps: "")


#: Attack name → :class:`Attack`; CLI choices and the report's ``norm`` come from here.
ATTACKS: Registry[Attack] = Registry("attack")
ATTACKS.register("noise", Attack(
    "noise", "L2", False,
    lambda margin, x, e, *, bounds, seed, pgd_steps: gaussian_noise(x, e, rng=seed, bounds=bounds)))
ATTACKS.register("fgsm", Attack(
    "fgsm", "Linf", True, lambda margin, x, e, *, bounds, seed, pgd_steps: fgsm(margin, x, e, bounds=bounds)))
ATTACKS.register("pgd", Attack(
    "pgd", "Linf", True,
    lambda margin, x, e, *, bounds, seed, pgd_steps: pgd(margin, x, e, steps=pgd_steps, bounds=bounds),
    note=lambda pgd_steps: f", {pgd_steps} steps"))
ATTACKS.register("deepfool", Attack(
    "deepfool", "Linf", True, lambda margin, x, e, *, bounds, seed, pgd_steps: deepfool(margin, x, e, bounds=bounds)))
#: Attacks that need a differentiable classifier (read from the registry).
GRADIENT_ATTACKS: frozenset[str] = frozenset(n for n in ATTACKS.names() if ATTACKS.get(n).requires_gradients)


def has_gradients(classifier: Any) -> bool:
    """True when ``classifier`` has ``torch_input`` and ``torch_unsafe_score`` (what attacks need)."""
    return callable(getattr(classifier, "torch_input", None)) and callable(
        getattr(classifier, "torch_unsafe_score", None))


def _bounds(classifier: Any) -> Bounds:
    import torch

    mean, std = getattr(classifier, "mean", None), getattr(classifier, "std", None)
    if isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor):
        return (0.0 - mean) / std, (1.0 - mean) / std
    return None


def select_correct(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, k: int, *,
                   rng: np.random.Generator | int | None = None,
                   eligible: Sequence[bool] | None = None) -> np.ndarray:
    """Indices of ``k`` correctly classified samples drawn without replacement (sorted).

    Examples
    --------
    >>> select_correct([1, 0, 1, 0], [1, 1, 1, 0], 2, rng=0).tolist()
    [2, 3]
    """
    import numpy as np
    if k < 1:
        raise InvalidParameterError(f"k must be at least 1, got {k}")
    ok = np.asarray(y_true) == np.asarray(y_pred)
    if eligible is not None:
        ok &= np.asarray(eligible, bool)
    idx = np.flatnonzero(ok)
    if len(idx) > k:
        idx = np.sort(np.random.default_rng(rng).choice(idx, size=k, replace=False))
    return idx


def evaluate_robustness(
    classifier: Any,
    images: Sequence[np.ndarray],
    labels: Sequence[int],
    *,
    attacks: Sequence[str] = ("noise", "fgsm", "pgd", "deepfool"),
    eps: Sequence[float] = (0.01,),
    pgd_steps: int = 100,
    seed: int | None = 0,
    batch_size: int = 8,
    on_step: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Robust accuracy of ``classifier`` under each attack and ε on correctly classified images.

    Parameters
    ----------
    classifier : Classifier
        With ``torch_input`` / ``torch_unsafe_score`` for the gradient attacks.
    images : sequence of H×W×3 uint8
        Usually the ``K`` correctly classified images from :func:`select_correct`.
    labels : sequence of int
        1 unsafe, 0 safe.
    attacks : sequence of str
        Names from :data:`ATTACKS`.
    eps : sequence of float
        Perturbation budgets (normalized input space; pixel space for the noise attack
        on gradient-free classifiers).
    seed : int or None
        Seeds the noise.
    on_step : callable, optional
        Called with 1 after each (attack, ε) cell.

    Returns
    -------
    list of dict
        ``{classifier, attack, eps, norm, n, clean_accuracy, robust_accuracy, note}``;
        ``robust_accuracy`` is ``None`` for an attack the classifier cannot undergo.

    Examples
    --------
    >>> rows = evaluate_robustness(clf, images, labels, attacks=["fgsm"])  # doctest: +SKIP
    """
    import numpy as np
    import torch

    from veil.image import as_rgb_uint8

    for a in attacks:
        ATTACKS.get(a)
    eps_list = [_check_eps(e) for e in eps]
    y = np.asarray(labels, np.int64)
    if len(y) != len(images):
        raise InvalidParameterError(f"labels ({len(y)}) must have one entry per image ({len(images)})")
    name = getattr(classifier, "name", type(classifier).__name__)
    thr = float(classifier.threshold)
    offset = math.log(thr / (1.0 - thr))
    grads = has_gradients(classifier)
    rows: list[dict[str, Any]] = []

    def row(attack: str, e: float, n: int, clean: float | None, robust: float | None, note: str) -> None:
        rows.append({"classifier": name, "attack": attack, "eps": e, "norm": ATTACKS.get(attack).norm, "n": n,
                     "clean_accuracy": clean, "robust_accuracy": robust, "note": note})

    if not grads:
        for attack in attacks:
            for e in eps_list:
                if ATTACKS.get(attack).requires_gradients:
                    row(attack, e, 0, None, None,
                        "not run: the classifier exposes no torch gradients (torch_input/torch_unsafe_score)")
                else:
                    gen = np.random.default_rng(seed)
                    noisy = []
                    for img in images:
                        f = img.astype(np.float32) / 255.0
                        d = gen.standard_normal(f.shape).astype(np.float32)
                        d *= e / max(float(np.linalg.norm(d)), 1e-12)
                        noisy.append(as_rgb_uint8(np.clip(f + d, 0.0, 1.0)))
                    n = len(images)
                    clean = classifier.unsafe_score(classifier.predict_proba(list(images))) > thr if n else []
                    adv = classifier.unsafe_score(classifier.predict_proba(noisy)) > thr if n else []
                    row(attack, e, n, float(np.mean(np.asarray(clean) == y)) if n else None,
                        float(np.mean(np.asarray(adv) == y)) if n else None,
                        "pixel space [0, 1], quantized to uint8 (no torch gradients)")
                if on_step is not None:
                    on_step(1)
        return rows

    bounds = _bounds(classifier)
    xs = [classifier.torch_input(img).detach() for img in images]
    sign_all = torch.tensor(np.where(y == 1, 1.0, -1.0), dtype=torch.float32)

    def margin_for(sign: torch.Tensor) -> Margin:
        def margin(z: torch.Tensor) -> torch.Tensor:
            return sign.to(z.device) * (classifier.torch_unsafe_score(z).float() - offset)

        return margin

    def correct(x: torch.Tensor, sign: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return (margin_for(sign)(x) > 0).cpu().numpy()

    module = classifier.torch_module() if callable(getattr(classifier, "torch_module", None)) else None
    params = list(module.parameters()) if module is not None else []
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)  # gradients w.r.t. the input only; restored below
    try:
        for attack in attacks:
            spec = ATTACKS.get(attack)
            for e in eps_list:
                clean_ok: list[np.ndarray] = []
                adv_ok: list[np.ndarray] = []
                for start in range(0, len(xs), batch_size):
                    x = torch.cat(xs[start : start + batch_size], 0)
                    sign = sign_all[start : start + batch_size]
                    margin = margin_for(sign)
                    adv = spec.run(margin, x, e, bounds=bounds, pgd_steps=pgd_steps,
                                   seed=None if seed is None else seed + start)
                    clean_ok.append(correct(x, sign))
                    adv_ok.append(correct(adv, sign))
                n = len(xs)
                c = np.concatenate(clean_ok) if clean_ok else np.zeros(0, bool)
                kept = np.concatenate(adv_ok) if adv_ok else np.zeros(0, bool)
                note = "normalized input space" + ("" if bounds is not None else ", unclamped")
                note += spec.note(pgd_steps)
                row(attack, e, n, float(c.mean()) if n else None, float((kept & c).mean()) if n else None, note)
                if on_step is not None:
                    on_step(1)
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
    return rows
