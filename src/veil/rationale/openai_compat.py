"""Rationale backend for any OpenAI-compatible chat-completions endpoint.

Works with hosted APIs and local servers (vLLM, llama.cpp, Ollama, LM Studio)
that accept images as ``image_url`` parts. Uses only the standard library
(``urllib``): the image goes as a base64 PNG data URL, the control code as
the conditioned instruction. Requests time out and are retried with
exponential backoff on connection errors, 408/409/429 and 5xx.

Configuration falls back to the environment: ``VEIL_VLM_BASE_URL`` (then
``OPENAI_BASE_URL``), ``VEIL_VLM_MODEL`` and the API key in the variable
named by ``api_key_env`` (``OPENAI_API_KEY``).

The endpoint transport (requests, retries, log-probabilities) is
:class:`veil.vlm.openai_compat.OpenAIVLM`; this module conditions it on the control code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from veil.rationale.prompt import SYSTEM_PROMPT, build_instruction, rationale_question
from veil.vlm.openai_compat import OpenAIVLM, image_data_url

__all__ = ["OpenAIBackend", "image_data_url"]


class OpenAIBackend(OpenAIVLM):
    """Ask an OpenAI-compatible VLM, conditioned on the control code.

    Takes the parameters of :class:`veil.vlm.openai_compat.OpenAIVLM`; requests carry
    :data:`veil.rationale.prompt.SYSTEM_PROMPT` as the system message.

    Examples
    --------
    >>> b = OpenAIBackend(base_url="http://127.0.0.1:9/v1", model="m")  # doctest: +SKIP
    """

    default_system = SYSTEM_PROMPT

    # -- protocol ---------------------------------------------------------------------------
    def explain(self, image: np.ndarray | None, control: Mapping[str, Any]) -> str:
        return self.ask(image, build_instruction(rationale_question(control), control, answer_cue=False))

    def answer(
        self, image: np.ndarray | None, control: Mapping[str, Any], questions: Sequence[str]
    ) -> list[str]:
        return [self.ask(image, build_instruction(q, control, answer_cue=False)) for q in questions]
