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
    "BACKEND_OPTIONS",
    "RATIONALE_BACKENDS",
    "BackendError",
    "RationaleBackend",
    "backend_options",
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

#: The options each backend takes from a caller that offers many (a CLI), and which it needs.
BACKEND_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "grounded": {"takes": (), "needs": ()},
    "transformers": {"takes": ("path", "max_new_tokens", "device"), "needs": ("path",)},
    "openai": {"takes": ("base_url", "model"), "needs": ()},
}
#: Options that say where a VLM is: giving one to a backend that takes none is an error.
_LOCATIONS = ("path", "base_url", "model")


def backend_options(backend: str, given: Mapping[str, Any],
                    flags: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The subset of ``given`` (None values dropped) that ``backend`` takes.

    ``flags`` names the options in messages (``{"path": "--vlm-path"}``).

    Raises
    ------
    InvalidParameterError
        When a needed option is missing, or a VLM location (``path``, ``base_url``, ``model``)
        is given to a backend that takes none of them.

    Examples
    --------
    >>> backend_options("openai", {"base_url": "http://h/v1", "path": None, "device": "cpu"})
    {'base_url': 'http://h/v1'}
    """
    RATIONALE_BACKENDS.get(backend)
    spec = BACKEND_OPTIONS.get(backend, {"takes": tuple(given), "needs": ()})
    flag = {**{k: k for k in given}, **dict(flags or {})}
    present = {k: v for k, v in given.items() if v is not None}
    for key in spec["needs"]:
        if key not in present:
            raise InvalidParameterError(f"{flag[key]} is required with --backend {backend}")
    stray = [k for k in _LOCATIONS if k in present and k not in spec["takes"]]
    if stray and not any(k in spec["takes"] for k in _LOCATIONS):
        raise InvalidParameterError(
            f"{'/'.join(flag[k] for k in _LOCATIONS if k in flag)} do not apply to --backend {backend}")
    return {k: present[k] for k in spec["takes"] if k in present}


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
