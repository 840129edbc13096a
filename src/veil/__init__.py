"""Veil: classify, explain and minimally obfuscate unsafe images.

>>> import veil
>>> result = veil.safeguard("photo.jpg")  # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from veil.errors import (  # noqa: E402
    CapabilityError,
    InvalidImageError,
    InvalidParameterError,
    MissingDependencyError,
    ModelLoadError,
    UnknownNameError,
    VeilError,
)
from veil.image import load_image  # noqa: E402
from veil.pipeline import SafeguardConfig, Safeguarder, safeguard  # noqa: E402
from veil.types import ModelOutput, Region, Result  # noqa: E402

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
