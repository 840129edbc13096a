"""Exceptions raised by Veil.

Every error a user can cause is a :class:`VeilError`; most also subclass the
matching builtin (``ValueError``, ``TypeError``, ``FileNotFoundError``) so
callers that do not know Veil can still catch them. The CLI turns them into a
one-line message and exit code 2.
"""

from __future__ import annotations


class VeilError(Exception):
    """Base class of every error Veil raises on purpose."""


class InvalidImageError(VeilError, ValueError):
    """The input is not a decodable image, is truncated, empty or too large."""


class NotAnImageError(InvalidImageError):
    """The input's content is not an image format Veil can decode (a folder scan skips it)."""


class ClassifierOutputError(VeilError, ValueError):
    """A classifier returned scores Veil cannot trust (NaN, infinite, outside [0, 1], wrong shape).

    The image it was judging fails closed: a model that cannot judge must not let it through.
    """


class InvalidParameterError(VeilError, ValueError):
    """A parameter has a value outside what the function accepts."""


class UnknownNameError(VeilError, KeyError):
    """A registry lookup failed; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class ModelLoadError(VeilError, ValueError):
    """A model card or checkpoint could not be loaded."""


class MissingDependencyError(VeilError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class CapabilityError(VeilError, TypeError):
    """A model lacks an ability a method needs (e.g. gradients for Grad-CAM)."""


def require(module: str, extra: str) -> object:
    """Import an optional module or raise :class:`MissingDependencyError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on environment
        raise MissingDependencyError(
            f"{module!r} is required for this feature; install it with `pip install veil[{extra}]`"
        ) from exc
