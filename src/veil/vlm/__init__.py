"""One transport for vision-language models: local transformers models and OpenAI-compatible endpoints.

* :mod:`veil.vlm.base` — the :class:`VLMBackend` protocol, :class:`BackendError`, the
  :data:`VLM_BACKENDS` registry and :func:`load_vlm`;
* :mod:`veil.vlm.hf` — :class:`~veil.vlm.hf.TransformersVLM` (a local model folder);
* :mod:`veil.vlm.openai_compat` — :class:`~veil.vlm.openai_compat.OpenAIVLM` (an endpoint);
* :mod:`veil.vlm.parse` — answers → ``safe`` / ``unsafe`` / ``unsure``;
* :mod:`veil.vlm.prompts` — category definitions and the PerspectiveVision prompt.

Used by :mod:`veil.classify.vlm`, :mod:`veil.rationale` and :mod:`veil.moderator`; it imports
only :mod:`veil.errors`, :mod:`veil.registry`, :mod:`veil.image` and :mod:`veil.taxonomy`.
Nothing here imports torch or transformers until a local model is loaded.

Examples
--------
>>> from veil.vlm import load_vlm
>>> load_vlm("openai", base_url="http://127.0.0.1:9/v1", model="m").name
'openai'
"""

from __future__ import annotations

from veil.vlm.base import VLM_BACKENDS, BackendError, Steps, VLMBackend, load_vlm

__all__ = ["VLM_BACKENDS", "BackendError", "Steps", "VLMBackend", "load_vlm"]
