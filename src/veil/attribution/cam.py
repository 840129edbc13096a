"""The Grad-CAM family through pytorch-grad-cam, the field's reference library.

One base pipeline, :func:`cam_attribution`, wraps the classifier in a module whose
single output is the unsafe score (so the target is ``ClassifierOutputTarget(0)``,
whatever the label layout), runs a pytorch-grad-cam method on the classifier's
``cam_target_layers()`` and maps the result back onto the image. Each registered
method only names its pytorch-grad-cam class and options.

The library mutates what it is given (``model.eval()``, weight gradients left in
``param.grad``, Ablation-CAM swapping a layer in and, on error, not back); the
pipeline restores all of it on exit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from veil.attribution.base import normalize, register_attribution
from veil.errors import InvalidParameterError

if TYPE_CHECKING:  # pragma: no cover - torch is imported on first use: registering stays light
    import torch

def __getattr__(name: str) -> Any:
    # UnsafeScoreModule subclasses torch.nn.Module: it lives in veil.attribution.score, imported on
    # first use, so that registering this family does not import torch.
    if name == "UnsafeScoreModule":
        from veil.attribution.score import UnsafeScoreModule

        return UnsafeScoreModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextmanager
def _model_restored(model: torch.nn.Module) -> Iterator[None]:
    """Undo, on exit, layer swaps, train/eval switches and ``param.grad`` changes under ``model``."""
    children = [(p, name, c) for p in model.modules() for name, c in p._modules.items()]
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.grad) for p in model.parameters()]
    try:
        yield
    finally:
        for parent, name, child in children:
            if parent._modules.get(name) is not child:
                parent._modules[name] = child
        for m, training in modes:
            m.training = training
        for p, g in grads:
            p.grad = g


def cam_attribution(
    image: np.ndarray,
    classifier: Any,
    make_cam: Callable[[torch.nn.Module, list[torch.nn.Module]], Any],
    *,
    odds: bool = False,
    eigen_smooth: bool = False,
    aug_smooth: bool = False,
) -> np.ndarray:
    """Run a pytorch-grad-cam method on the unsafe score; H×W ``float32`` in [0, 1].

    Parameters
    ----------
    image : (H, W, 3) uint8 ndarray
    classifier : GradientClassifier
    make_cam : callable
        ``make_cam(model, target_layers)`` returning a pytorch-grad-cam CAM object.
    odds : bool
        Score the unsafe odds instead of the log-odds (see :class:`~veil.attribution.score.UnsafeScoreModule`).
    eigen_smooth, aug_smooth : bool
        pytorch-grad-cam's smoothing switches (first principal component of the
        weighted activations; test-time flips and scalings, 6× the cost).
    """
    import torch
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from veil.attribution.score import UnsafeScoreModule

    layers = list(classifier.cam_target_layers())
    if not layers:
        raise InvalidParameterError(
            "classifier.cam_target_layers() returned no layers; Grad-CAM methods need at least one"
        )
    with torch.inference_mode(False):
        # An input that requires grad keeps activations differentiable even with frozen weights.
        x = classifier.torch_input(image).detach().clone().requires_grad_(True)
    model = UnsafeScoreModule(classifier, odds=odds)
    with _model_restored(model):
        cam = make_cam(model, layers)
        try:
            with torch.inference_mode(False), torch.enable_grad():
                maps = cam(
                    input_tensor=x,
                    targets=[ClassifierOutputTarget(0)],
                    eigen_smooth=bool(eigen_smooth),
                    aug_smooth=bool(aug_smooth),
                )
        finally:
            cam.activations_and_grads.release()
    return normalize(classifier.attribution_to_image(maps[0], tuple(image.shape[:2])))


@register_attribution(
    "gradcam", requires_gradients=True, summary="Grad-CAM: activations weighted by mean gradients"
)
def gradcam(
    image: np.ndarray, classifier: Any, *, eigen_smooth: bool = False, aug_smooth: bool = False
) -> np.ndarray:
    """Grad-CAM (Selvaraju et al., 2017) of the unsafe score on ``cam_target_layers()``."""
    from pytorch_grad_cam import GradCAM

    return cam_attribution(
        image, classifier, GradCAM, eigen_smooth=eigen_smooth, aug_smooth=aug_smooth
    )


@register_attribution(
    "gradcam++",
    requires_gradients=True,
    summary="Grad-CAM++: higher-order gradient weights, better with several instances",
)
def gradcam_plusplus(
    image: np.ndarray, classifier: Any, *, eigen_smooth: bool = False, aug_smooth: bool = False
) -> np.ndarray:
    """Grad-CAM++ (Chattopadhyay et al., 2018) of the unsafe score on ``cam_target_layers()``."""
    from pytorch_grad_cam import GradCAMPlusPlus

    return cam_attribution(
        image, classifier, GradCAMPlusPlus, eigen_smooth=eigen_smooth, aug_smooth=aug_smooth
    )


@register_attribution(
    "xgradcam",
    requires_gradients=True,
    summary="XGrad-CAM: activation-normalised gradient weights",
)
def xgradcam(
    image: np.ndarray, classifier: Any, *, eigen_smooth: bool = False, aug_smooth: bool = False
) -> np.ndarray:
    """XGrad-CAM (Fu et al., 2020) of the unsafe score on ``cam_target_layers()``."""
    from pytorch_grad_cam import XGradCAM

    return cam_attribution(
        image, classifier, XGradCAM, eigen_smooth=eigen_smooth, aug_smooth=aug_smooth
    )


@register_attribution(
    "ablationcam",
    requires_gradients=True,
    summary="Ablation-CAM: channel weights from the score drop when each channel is zeroed",
)
def ablationcam(
    image: np.ndarray,
    classifier: Any,
    *,
    batch_size: int = 32,
    ratio_channels_to_ablate: float = 1.0,
    eigen_smooth: bool = False,
    aug_smooth: bool = False,
) -> np.ndarray:
    """Ablation-CAM (Desai & Ramaswamy, 2020) of the unsafe odds on ``cam_target_layers()``.

    One forward pass per channel of the target layers, ``batch_size`` at a
    time; ``ratio_channels_to_ablate`` < 1 ablates only the channels most
    inside the first principal component of the activations (faster, approximate).
    """
    from pytorch_grad_cam import AblationCAM
    from pytorch_grad_cam.ablation_layer import AblationLayer

    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InvalidParameterError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not 0.0 < float(ratio_channels_to_ablate) <= 1.0:
        raise InvalidParameterError(
            f"ratio_channels_to_ablate must lie in (0, 1], got {ratio_channels_to_ablate!r}"
        )

    def make_cam(model: torch.nn.Module, layers: list[torch.nn.Module]) -> Any:
        # A fresh AblationLayer per call: the library's default argument is one shared instance.
        return AblationCAM(
            model,
            layers,
            ablation_layer=AblationLayer(),
            batch_size=int(batch_size),
            ratio_channels_to_ablate=float(ratio_channels_to_ablate),
        )

    return cam_attribution(
        image, classifier, make_cam, odds=True, eigen_smooth=eigen_smooth, aug_smooth=aug_smooth
    )
