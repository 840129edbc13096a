"""Veil: classify, explain and minimally obfuscate unsafe images.

>>> import veil
>>> result = veil.safeguard("photo.jpg")  # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING

from veil.errors import (  # noqa: E402
    CapabilityError,
    InvalidImageError,
    InvalidParameterError,
    MissingDependencyError,
    ModelLoadError,
    UnknownNameError,
    VeilError,
)
from veil.types import ModelOutput, Region, Result  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from veil.image import load_image
    from veil.pipeline import SafeguardConfig, Safeguarder, safeguard

# The pipeline pulls in torch and the image stack: loaded on first use, so that `import veil`
# (and `veil --help`, `veil version`) stays fast.
_LAZY = {
    "SafeguardConfig": "veil.pipeline",
    "Safeguarder": "veil.pipeline",
    "safeguard": "veil.pipeline",
    "load_image": "veil.image",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'veil' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

__all__ = [
    "CapabilityError",
    "InvalidImageError",
    "InvalidParameterError",
    "MissingDependencyError",
    "ModelLoadError",
    "ModelOutput",
    "Region",
    "Result",
    "SafeguardConfig",
    "Safeguarder",
    "UnknownNameError",
    "VeilError",
    "__version__",
    "load_image",
    "safeguard",
]
