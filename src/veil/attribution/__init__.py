"""Attribution maps: which pixels drive a classifier's unsafe score.

One signature for every method, one registry::

    attribute(image, classifier, method="fullgrad", **options) -> (H, W) float32 in [0, 1]

``image`` is H×W×3 ``uint8``; the map explains the classifier's *unsafe* score
(``torch_unsafe_score`` for gradient methods, ``unsafe_score(predict_proba)``
for occlusion), never a class index. Methods, in :data:`ATTRIBUTIONS`:

* ``fullgrad`` (default) — FullGrad, our single-pass implementation;
* ``gradcam``, ``gradcam++``, ``xgradcam``, ``ablationcam`` — pytorch-grad-cam on
  the classifier's ``cam_target_layers()``;
* ``occlusion`` — gradient-free, for any classifier.

All but ``occlusion`` need a :class:`~veil.classify.GradientClassifier`; asking
one of them of another classifier raises :class:`~veil.errors.CapabilityError`.
:func:`combine` merges several models' maps (elementwise max or mean).

Examples
--------
>>> import numpy as np, torch
>>> from veil.attribution import ATTRIBUTIONS, attribute
>>> from veil.classify.torch import TorchClassifier
>>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
...                           torch.nn.Linear(4, 2))
>>> clf = TorchClassifier(net, ["safe", "unsafe"], ["unsafe"], input_size=32)
>>> image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
>>> m = attribute(image, clf, "gradcam")
>>> m.shape, m.dtype, bool(0.0 <= m.min() <= m.max() <= 1.0)
((48, 64), dtype('float32'), True)
>>> "occlusion" in ATTRIBUTIONS
True
"""

from __future__ import annotations

from veil.attribution import cam as _cam  # noqa: F401  (registers the Grad-CAM family)
from veil.attribution import fullgrad as _fullgrad  # noqa: F401  (registers fullgrad)
from veil.attribution import occlusion as _occlusion  # noqa: F401  (registers occlusion)
from veil.attribution.base import (
    ATTRIBUTIONS,
    AttributionMethod,
    attribute,
    combine,
    normalize,
    register_attribution,
)

__all__ = [
    "ATTRIBUTIONS",
    "AttributionMethod",
    "attribute",
    "combine",
    "normalize",
    "register_attribution",
]
