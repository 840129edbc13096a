"""Rationale backend for Hugging Face vision-language models loaded from a local directory.

The model itself (loading, prompt formats, encoding) is :class:`veil.vlm.hf.TransformersVLM`;
this module conditions it on the control code.

Supported families (read from the directory's ``config.json``):

* ``instructblip`` — the paper's Conditional VLM. The control code goes into
  the language model's prompt *and* into the Q-Former instruction
  (``qformer_input_ids``), so it steers which visual features are extracted;
* ``llava`` (and ``llava_next``) — the control code goes into the chat prompt;
* ``qwen2_vl`` / ``qwen2_5_vl`` — likewise, through the processor's chat template.

Nothing is downloaded (``local_files_only=True``). Generation defaults follow
the paper: beam search with 5 beams, max length 512, top-p 0.9, repetition
penalty 1.5, length penalty 1.0, temperature 1.

Requires ``pip install veil[vlm]`` (``transformers``, ``accelerate``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from veil.errors import InvalidParameterError
from veil.rationale.prompt import build_instruction, build_qformer_instruction, rationale_question
from veil.vlm.hf import FAMILIES, GENERATION_DEFAULTS, TransformersVLM

__all__ = ["FAMILIES", "GENERATION_DEFAULTS", "TransformersBackend"]


class TransformersBackend(TransformersVLM):
    """Conditioned generation with a local InstructBLIP, LLaVA or Qwen2-VL model.

    Takes the parameters of :class:`veil.vlm.hf.TransformersVLM` (``path``, ``device``,
    ``dtype``, ``max_new_tokens``, ``adapter``, generation overrides).

    Examples
    --------
    >>> b = TransformersBackend("models/instructblip-vicuna-7b")  # doctest: +SKIP
    >>> b.answer(image, control, ["What are the people doing?"])  # doctest: +SKIP
    """

    # -- prompts ----------------------------------------------------------------------------
    def prompts(self, control: Mapping[str, Any], question: str) -> dict[str, str]:
        """The texts the model reads: ``{"prompt": …}`` plus ``"qformer"`` for InstructBLIP."""
        if self.family == "instructblip":
            instruction = build_instruction(question, control)
            out = {"instruction": instruction, "prompt": instruction}
            out["qformer"] = build_qformer_instruction(question, control)
            return out
        # Chat templates mark the assistant's turn themselves: no "Answer:" cue.
        instruction = build_instruction(question, control, answer_cue=False)
        return {"instruction": instruction, "prompt": self.format_prompt(instruction)}

    def build_inputs(self, image: np.ndarray, control: Mapping[str, Any], question: str) -> tuple[Any, dict[str, str]]:
        """Model inputs (a ``BatchFeature`` on the device) and the texts they came from."""
        if image is None:
            raise InvalidParameterError("the transformers backend needs the image; got None")
        texts = self.prompts(control, question)
        return self.encode(image, texts["prompt"], qformer=texts.get("qformer")), texts

    # -- generation -------------------------------------------------------------------------
    def generate(self, image: np.ndarray, control: Mapping[str, Any], question: str) -> str:
        """Answer one question about ``image``, conditioned on ``control``."""
        import torch

        enc, _ = self.build_inputs(image, control, question)
        gen = dict(self.generation)
        if not gen.get("do_sample"):
            # Sampling settings only matter when sampling; passing them to beam search warns.
            gen.pop("top_p", None)
            gen.pop("temperature", None)
            gen.pop("top_k", None)
        # As in LAVIS, lengths count generated tokens, not the (long, image-token-laden) prompt.
        if "max_length" in gen:
            gen["max_new_tokens"] = gen.pop("max_length")
        if "min_length" in gen:
            gen["min_new_tokens"] = gen.pop("min_length")
        with torch.inference_mode():
            out = self.model.generate(**enc, **gen)
        ids = enc["input_ids"]
        if out.shape[1] >= ids.shape[1] and torch.equal(out[:, : ids.shape[1]].cpu(), ids.cpu()):
            out = out[:, ids.shape[1] :]  # decoder-only models echo the prompt
        tok = getattr(self.processor, "tokenizer", self.processor)
        return str(tok.batch_decode(out, skip_special_tokens=True)[0]).strip()

    def explain(self, image: np.ndarray | None, control: Mapping[str, Any]) -> str:
        return self.generate(image, control, rationale_question(control))  # type: ignore[arg-type]

    def answer(
        self, image: np.ndarray | None, control: Mapping[str, Any], questions: Sequence[str]
    ) -> list[str]:
        return [self.generate(image, control, q) for q in questions]  # type: ignore[arg-type]

