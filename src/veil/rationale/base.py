"""The rationale-backend protocol and the :data:`RATIONALE_BACKENDS` registry.

A backend turns an image and its control code into text: ``explain`` writes
the rationale, ``answer`` answers moderator questions. Backends are created
once by :func:`load_backend` (a registry factory) and reused across images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from veil.errors import InvalidParameterError
from veil.registry import Registry
from veil.vlm.base import BackendError  # one error for every VLM transport

__all__ = [
    "RATIONALE_BACKENDS",
    "BackendError",
    "RationaleBackend",
    "load_backend",
]


@runtime_checkable
class RationaleBackend(Protocol):
    """Anything that writes rationales and answers from an image and a control code.

    The conditioning strength travels inside the control code (``control["strength"]``).
    """

    name: str

    def explain(self, image: np.ndarray | None, control: Mapping[str, Any]) -> str:
        """A rationale for the classifiers' verdict on ``image``."""
        ...

    def answer(
        self, image: np.ndarray | None, control: Mapping[str, Any], questions: Sequence[str]
    ) -> list[str]:
        """One answer per question, in order."""
        ...


#: name → factory ``(**options) -> RationaleBackend``.
RATIONALE_BACKENDS: Registry[Callable[..., RationaleBackend]] = Registry("rationale backend")


def _grounded(**options: Any) -> RationaleBackend:
    from veil.rationale.grounded import GroundedBackend

    return GroundedBackend(**options)


def _transformers(**options: Any) -> RationaleBackend:
    from veil.rationale.hf import TransformersBackend

    return TransformersBackend(**options)


def _openai(**options: Any) -> RationaleBackend:
    from veil.rationale.openai_compat import OpenAIBackend

    return OpenAIBackend(**options)


RATIONALE_BACKENDS.register("grounded", _grounded)
RATIONALE_BACKENDS.register("transformers", _transformers)
RATIONALE_BACKENDS.register("openai", _openai)


def load_backend(backend: str | RationaleBackend = "grounded", **options: Any) -> RationaleBackend:
    """Create a backend by registry name, or pass an existing one through (options must be empty).

    Examples
    --------
    >>> load_backend("grounded").name
    'grounded'
    """
    if isinstance(backend, str):
        return RATIONALE_BACKENDS.get(backend)(**options)
    if isinstance(backend, RationaleBackend):
        if options:
            raise InvalidParameterError(
                f"backend options {sorted(options)} cannot be applied to an existing backend "
                f"instance {backend.name!r}; pass them when creating it"
            )
        return backend
    raise InvalidParameterError(
        f"backend must be a name ({', '.join(RATIONALE_BACKENDS.names())}) or a RationaleBackend, "
        f"got {type(backend).__name__}"
    )
