"""The one VLM transport contract: :class:`VLMBackend`, :class:`BackendError` and a registry.

A VLM backend answers a plain text about an image and, where it can, reports per-token
log-probabilities. Two implementations ship: a local transformers model
(:class:`veil.vlm.hf.TransformersVLM`) and any OpenAI-compatible chat-completions endpoint
(:class:`veil.vlm.openai_compat.OpenAIVLM`). The classifier (:mod:`veil.classify.vlm`), the
rationale writers (:mod:`veil.rationale`) and the moderator trainer (:mod:`veil.moderator`)
all talk to a VLM through this contract; what a backend can do beyond it is declared as
attributes (``forces_prefix``), never guessed from the methods it happens to have.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from veil.errors import VeilError
from veil.registry import Registry

__all__ = ["VLM_BACKENDS", "BackendError", "Steps", "VLMBackend", "load_vlm"]

#: Per generated token: the chosen token's text and ``{alternative: log-probability}``.
Steps = list[tuple[str, dict[str, float]]]


class BackendError(VeilError, RuntimeError):
    """A VLM backend failed (e.g. the endpoint kept failing or answered garbage)."""


@runtime_checkable
class VLMBackend(Protocol):
    """A vision-language model that answers a text about an image.

    Attributes
    ----------
    name : str
        Registry name of the backend (``"transformers"``, ``"openai"``).
    forces_prefix : bool
        True when the backend runs the model itself: it can force the start of the answer
        (``prefix``) and report the log-probability of ``candidates`` at every step. An
        endpoint cannot; it reports only the alternatives it was asked for (``top_logprobs``).
    """

    name: str
    forces_prefix: bool

    def complete(
        self,
        image: np.ndarray | None,
        text: str,
        *,
        system: str | None = None,
        prefix: str | None = None,
        max_new_tokens: int = 16,
        top_logprobs: int | None = None,
        candidates: Sequence[str] = (),
    ) -> tuple[str, Steps | None]:
        """The answer to ``text`` about ``image`` and its per-token log-probabilities (or None)."""
        ...


#: name → factory ``(**options) -> VLMBackend``.
VLM_BACKENDS: Registry[Callable[..., VLMBackend]] = Registry("VLM backend")


def _transformers(**options: Any) -> VLMBackend:
    from veil.vlm.hf import TransformersVLM

    return TransformersVLM(**options)


def _openai(**options: Any) -> VLMBackend:
    from veil.vlm.openai_compat import OpenAIVLM

    return OpenAIVLM(**options)


VLM_BACKENDS.register("transformers", _transformers)
VLM_BACKENDS.register("openai", _openai)


def load_vlm(backend: str, **options: Any) -> VLMBackend:
    """Create a VLM backend by registry name (``"transformers"`` or ``"openai"``).

    Examples
    --------
    >>> load_vlm("openai", base_url="http://127.0.0.1:9/v1", model="m").forces_prefix
    False
    """
    return VLM_BACKENDS.get(backend)(**options)
