"""Conditional rationale: why an image was flagged, in terms of what is in it.

The classifiers' outputs become a *control code* (:func:`build_control`) that
shapes the instruction a vision-language model reads (the paper's
Conditional VLM). Three backends sit behind one protocol and the
:data:`RATIONALE_BACKENDS` registry:

* ``grounded`` (default) — offline and deterministic, composed from the
  control code, category definitions, attributes and obfuscated regions;
* ``transformers`` — InstructBLIP, LLaVA or Qwen2-VL loaded from a local
  directory (``pip install veil[vlm]``);
* ``openai`` — any OpenAI-compatible chat-completions endpoint.

Examples
--------
>>> import numpy as np
>>> from veil.types import ModelOutput, Result
>>> m = ModelOutput("nsfw", {"neutral": 0.03, "porn": 0.97}, 0.97, True, 0.5, ("porn",))
>>> r = Result(True, {"nsfw": 0.97}, [m], False, None, 0.0, {}, [], False, None,
...            np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), bool))
>>> out = explain(r)
>>> out["backend"], out["control"]["statement"]
('grounded', 'the image contains sexually explicit content')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from veil.errors import InvalidParameterError
from veil.image import as_rgb_uint8
from veil.rationale.base import RATIONALE_BACKENDS, BackendError, RationaleBackend, load_backend
from veil.rationale.control import build_control
from veil.rationale.prompt import build_instruction, build_qformer_instruction, control_text
from veil.types import Result

__all__ = [
    "RATIONALE_BACKENDS",
    "BackendError",
    "RationaleBackend",
    "answer_questions",
    "build_control",
    "build_instruction",
    "build_qformer_instruction",
    "control_text",
    "explain",
    "load_backend",
]


def _questions(questions: Sequence[str] | str | None) -> list[str]:
    if questions is None:
        return []
    if isinstance(questions, str):
        questions = [questions]
    out = []
    for i, q in enumerate(questions):
        if not isinstance(q, str) or not q.strip():
            raise InvalidParameterError(
                f"questions[{i}] must be a non-empty string, got {q!r}"
            )
        out.append(q.strip())
    return out


def _image(image: np.ndarray | None, result: Result) -> np.ndarray | None:
    img = result.image if image is None else image
    if img is None:
        return None
    return as_rgb_uint8(np.asarray(img))


def explain(
    result: Result,
    *,
    backend: str | RationaleBackend = "grounded",
    strength: float = 1.0,
    categories: Mapping[str, Mapping[str, str]] | None = None,
    questions: Sequence[str] | str | None = None,
    image: np.ndarray | None = None,
    **backend_options: Any,
) -> dict[str, Any]:
    """Explain one pipeline result: rationale text, its control code and the backend used.

    Parameters
    ----------
    result : veil.types.Result
        The pipeline's verdict; not modified (store the return value in
        ``result.rationale`` yourself).
    backend : str or RationaleBackend
        A :data:`RATIONALE_BACKENDS` name or a backend created once with
        :func:`load_backend` and reused (VLMs are expensive to load).
    strength : float
        Conditioning strength in [0, 1]; 0 asks the VLM the plain question.
    categories : dict, optional
        ``{model_name: {label: category}}``, typically each classifier's
        ``config["categories"]``.
    questions : sequence of str, optional
        Moderator questions to answer too (see :mod:`veil.taxonomy`).
    image : ndarray, optional
        The pixels the VLM looks at; defaults to ``result.image`` (the
        delivered, obfuscated image). Pass the original to explain it.
    **backend_options
        Passed to the backend factory when ``backend`` is a name.

    Returns
    -------
    dict
        ``{"text", "control", "backend"}`` plus ``"answers"``
        (``[{"question", "answer"}]``) when questions were asked; JSON-serialisable.
    """
    control = build_control(result, strength=strength, categories=categories)
    qs = _questions(questions)
    b = load_backend(backend, **backend_options)
    img = _image(image, result)
    out: dict[str, Any] = {"text": b.explain(img, control), "control": control, "backend": b.name}
    if qs:
        answers = b.answer(img, control, qs)
        if len(answers) != len(qs):
            raise BackendError(
                f"backend {b.name!r} returned {len(answers)} answers for {len(qs)} questions"
            )
        out["answers"] = [{"question": q, "answer": a} for q, a in zip(qs, answers, strict=True)]
    return out


def answer_questions(
    image: np.ndarray | None,
    result: Result,
    questions: Sequence[str] | str,
    *,
    backend: str | RationaleBackend = "grounded",
    strength: float = 1.0,
    categories: Mapping[str, Mapping[str, str]] | None = None,
    **backend_options: Any,
) -> list[dict[str, str]]:
    """Answer moderator questions about ``image``, conditioned on ``result``'s control code.

    Returns
    -------
    list of dict
        ``[{"question": ..., "answer": ...}]`` in the order asked.

    Examples
    --------
    >>> import numpy as np
    >>> from veil.types import Result
    >>> r = Result(False, {}, [], False, None, 0.0, {}, [], False, None,
    ...            np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), bool))
    >>> answer_questions(None, r, "Are there any depictions of self-harm in the image?")[0]["answer"]
    'No. The safety classifiers found nothing unsafe in the image.'
    """
    qs = _questions(questions)
    if not qs:
        raise InvalidParameterError("questions must contain at least one question, got none")
    control = build_control(result, strength=strength, categories=categories)
    b = load_backend(backend, **backend_options)
    answers = b.answer(_image(image, result), control, qs)
    if len(answers) != len(qs):
        raise BackendError(
            f"backend {b.name!r} returned {len(answers)} answers for {len(qs)} questions"
        )
    return [{"question": q, "answer": a} for q, a in zip(qs, answers, strict=True)]
