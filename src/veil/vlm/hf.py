"""Local Hugging Face vision-language models (InstructBLIP, LLaVA, Qwen2-VL) as a VLM transport.

Supported families (read from the directory's ``config.json``):

* ``instructblip`` — the paper's Conditional VLM (with a Q-Former instruction);
* ``llava`` (and ``llava_next``) — a chat prompt;
* ``qwen2_vl`` / ``qwen2_5_vl`` — likewise, through the processor's chat template.

Nothing is downloaded (``local_files_only=True``). :class:`TransformersVLM` loads the
model, formats and encodes prompts and answers a plain text with per-token
log-probabilities (:meth:`TransformersVLM.complete`); the control-code-conditioned
rationale writer built on it is :class:`veil.rationale.hf.TransformersBackend`.

Requires ``pip install veil[vlm]`` (``transformers``, ``accelerate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from veil.errors import InvalidParameterError, ModelLoadError, require
from veil.vlm.base import Steps

__all__ = ["FAMILIES", "GENERATION_DEFAULTS", "TransformersVLM", "load_adapter"]

#: Paper generation settings (InstructBLIP's defaults).
GENERATION_DEFAULTS: dict[str, Any] = {
    "num_beams": 5,
    "max_length": 512,
    "min_length": 1,
    "top_p": 0.9,
    "repetition_penalty": 1.5,
    "length_penalty": 1.0,
    "temperature": 1.0,
    "do_sample": False,
}

#: config ``model_type`` → (family, transformers model class name).
FAMILIES: dict[str, tuple[str, str]] = {
    "instructblip": ("instructblip", "InstructBlipForConditionalGeneration"),
    "llava": ("llava", "LlavaForConditionalGeneration"),
    "llava_next": ("llava", "LlavaNextForConditionalGeneration"),
    "qwen2_vl": ("qwen2_vl", "Qwen2VLForConditionalGeneration"),
    "qwen2_5_vl": ("qwen2_vl", "Qwen2_5_VLForConditionalGeneration"),
}


def _pil(image: np.ndarray) -> Any:
    from PIL import Image

    from veil.image import as_rgb_uint8

    return Image.fromarray(as_rgb_uint8(image))


class TransformersVLM:
    """A local InstructBLIP, LLaVA or Qwen2-VL model: prompt formatting, encoding, answers with log-probabilities.

    Parameters
    ----------
    path : str or Path
        Directory holding ``config.json``, the weights and the processor files.
    device : str, optional
        torch device; default ``"cuda"`` when available, else ``"cpu"``.
    dtype : str, optional
        ``"float32"``, ``"float16"`` or ``"bfloat16"``; default: the checkpoint's.
    max_new_tokens : int, optional
        Cap on generated tokens; replaces ``max_length`` (which, as in LAVIS, also
        counts generated tokens only).
    **generation
        Overrides of :data:`GENERATION_DEFAULTS` (``num_beams=1`` for speed, …).

    Examples
    --------
    >>> b = TransformersVLM("models/llava-1.5-7b-hf")  # doctest: +SKIP
    >>> b.complete(image, "Is this image safe?", max_new_tokens=4)  # doctest: +SKIP
    """

    name = "transformers"
    forces_prefix = True

    def __init__(
        self,
        path: str | Path,
        *,
        device: str | None = None,
        dtype: str | None = None,
        max_new_tokens: int | None = None,
        adapter: str | Path | None = None,
        **generation: Any,
    ) -> None:
        p = Path(path).expanduser()
        if not p.is_dir():
            raise ModelLoadError(
                f"VLM directory {str(path)!r} does not exist; download the model yourself "
                "(e.g. `huggingface-cli download Salesforce/instructblip-vicuna-7b --local-dir DIR`) "
                "and pass --vlm-path DIR"
            )
        if not (p / "config.json").is_file():
            raise ModelLoadError(f"VLM directory {str(p)!r} has no config.json; is it a model folder?")
        transformers: Any = require("transformers", "vlm")
        torch: Any = require("torch", "vlm")
        unknown = sorted(set(generation) - set(GENERATION_DEFAULTS) - {"num_return_sequences", "no_repeat_ngram_size", "top_k"})
        if unknown:
            raise InvalidParameterError(
                f"unknown generation options {unknown}; valid: {sorted(GENERATION_DEFAULTS)}"
            )
        if max_new_tokens is not None and int(max_new_tokens) < 1:
            raise InvalidParameterError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        try:
            config = transformers.AutoConfig.from_pretrained(str(p), local_files_only=True)  # type: ignore[attr-defined]
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read VLM config in {str(p)!r}: {exc}") from exc
        mtype = getattr(config, "model_type", None)
        if mtype not in FAMILIES:
            raise ModelLoadError(
                f"VLM in {str(p)!r} has model_type {mtype!r}; supported: {', '.join(sorted(FAMILIES))}"
            )
        self.family, cls_name = FAMILIES[mtype]
        cls = getattr(transformers, cls_name)
        kwargs: dict[str, Any] = {"local_files_only": True}
        if dtype is not None:
            if dtype not in ("float32", "float16", "bfloat16"):
                raise InvalidParameterError(
                    f"dtype must be float32, float16 or bfloat16, got {dtype!r}"
                )
            kwargs["dtype"] = getattr(torch, dtype)
        try:
            model = cls.from_pretrained(str(p), **kwargs)
            processor = transformers.AutoProcessor.from_pretrained(str(p), local_files_only=True)  # type: ignore[attr-defined]
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load the VLM in {str(p)!r}: {exc}") from exc
        if adapter is not None:
            model = load_adapter(model, adapter)
        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")  # type: ignore[attr-defined]
        self.model = model.to(dev).eval()
        self.processor = processor
        self.device = dev
        self.path = str(p)
        self.adapter = None if adapter is None else str(adapter)
        self.generation = {**GENERATION_DEFAULTS, **generation}
        if max_new_tokens is not None:
            self.generation.pop("max_length", None)
            self.generation["max_new_tokens"] = int(max_new_tokens)

    def format_prompt(self, text: str) -> str:
        """Wrap a plain user ``text`` (with the image) in the model's prompt format.

        Chat models get their chat template with the generation prompt (the assistant's
        turn); InstructBLIP reads ``text`` as it is.
        """
        if self.family == "instructblip":
            return text
        template = getattr(self.processor, "chat_template", None)
        if template:
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
            return str(self.processor.apply_chat_template(messages, add_generation_prompt=True))
        if self.family == "llava":
            return f"USER: <image>\n{text} ASSISTANT:"  # LLaVA-1.5 format
        raise ModelLoadError(
            f"the {self.family} processor in {self.path!r} has no chat template; "
            "add chat_template.jinja to the model folder"
        )

    def encode(
        self,
        image: np.ndarray | None,
        prompt: str,
        *,
        qformer: str | None = None,
        continuation: str | None = None,
        to_device: bool = True,
    ) -> Any:
        """Processor output for ``image`` and a formatted ``prompt`` (a ``BatchFeature``).

        ``continuation`` is tokenized on its own (after a space, no special tokens) and
        appended to ``input_ids``, so a forced answer prefix at inference and a training
        target split the text into the same tokens. ``qformer`` is InstructBLIP's Q-Former
        instruction (default: ``prompt``).
        """
        import torch

        if image is None:
            raise InvalidParameterError("the transformers backend needs the image; got None")
        enc = self.processor(images=[_pil(image)], text=[prompt], return_tensors="pt")
        if self.family == "instructblip":
            # The processor gives the Q-Former the LLM prompt; it gets its own instruction.
            q = self.processor.qformer_tokenizer(
                [prompt if qformer is None else qformer], return_tensors="pt", truncation=True,
                max_length=512,
            )
            enc["qformer_input_ids"] = q["input_ids"]
            enc["qformer_attention_mask"] = q["attention_mask"]
        if continuation:
            extra = self.tokenizer(" " + continuation.strip(), add_special_tokens=False)["input_ids"]
            ids = torch.tensor([extra], dtype=enc["input_ids"].dtype)
            enc["input_ids"] = torch.cat([enc["input_ids"], ids], dim=1)
            enc["attention_mask"] = torch.cat([enc["attention_mask"], torch.ones_like(ids)], dim=1)
        if to_device:
            enc = enc.to(self.device)
            if "pixel_values" in enc and enc["pixel_values"].is_floating_point():
                enc["pixel_values"] = enc["pixel_values"].to(self.model.dtype)
        return enc

    @property
    def tokenizer(self) -> Any:
        """The language model's tokenizer."""
        return getattr(self.processor, "tokenizer", self.processor)

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
        top_k: int = 20,
    ) -> tuple[str, Steps]:
        """Greedy answer to a plain ``text`` about ``image`` with per-step token log-probabilities.

        Parameters
        ----------
        image : ndarray
            H×W×3 ``uint8`` image.
        text : str
            The user's message (formatted with :meth:`format_prompt`; no control code).
        prefix : str, optional
            Forced start of the answer (e.g. ``"Safety Status:"``); not part of the returned text.
        system : str, optional
            Not used: the model's chat template decides the conversation's framing.
        max_new_tokens : int
            Generated-token cap.
        top_logprobs, top_k : int
            How many most likely alternatives each step reports (``top_logprobs`` wins
            when given; ``top_k`` is the older name).
        candidates : sequence of str
            Words whose *first* token's log-probability is reported at every step too
            (``["safe", " safe", "unsafe", …]``), whether or not it is in the top ``k``.

        Returns
        -------
        text : str
            The generated answer (special tokens removed, stripped).
        steps : list of (token, {alternative: log-prob})
            One entry per generated token: the chosen token's text and the log-probabilities
            (raw logits, log-softmaxed) of the alternatives, keyed by their decoded text.
        """
        import torch

        if int(max_new_tokens) < 1:
            raise InvalidParameterError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if top_logprobs is not None:
            top_k = int(top_logprobs)
        enc = self.encode(image, self.format_prompt(text), qformer=text, continuation=prefix)
        tok = self.tokenizer
        cand_ids = sorted({ids[0] for c in candidates
                           if (ids := tok(c, add_special_tokens=False)["input_ids"])})
        with torch.inference_mode():
            out = self.model.generate(
                **enc, max_new_tokens=int(max_new_tokens), do_sample=False, num_beams=1,
                output_logits=True, return_dict_in_generate=True,
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            )
        seq = out.sequences
        ids = enc["input_ids"]
        if seq.shape[1] >= ids.shape[1] and torch.equal(seq[:, : ids.shape[1]].cpu(), ids.cpu()):
            seq = seq[:, ids.shape[1] :]
        gen = seq[0, -len(out.logits):].tolist() if out.logits else []
        steps: list[tuple[str, dict[str, float]]] = []
        for chosen, logits in zip(gen, out.logits, strict=False):
            lp = torch.log_softmax(logits[0].float(), dim=-1)
            k = min(int(top_k), lp.shape[-1])
            top = set(torch.topk(lp, k).indices.tolist()) | set(cand_ids) | {int(chosen)}
            alts: dict[str, float] = {}
            for i in sorted(top):
                key = tok.decode([i])
                alts[key] = float(torch.logaddexp(torch.tensor(alts[key]), lp[i]).item()) if key in alts else float(lp[i])
            steps.append((tok.decode([int(chosen)]), alts))
        answer = str(tok.batch_decode(seq, skip_special_tokens=True)[0]).strip()
        return answer, steps


def load_adapter(model: Any, adapter: str | Path) -> Any:
    """Wrap ``model`` with a saved peft (LoRA) adapter, merged for inference."""
    peft: Any = require("peft", "vlm")
    a = Path(adapter).expanduser()
    if not (a / "adapter_config.json").is_file():
        raise ModelLoadError(f"adapter folder {str(adapter)!r} has no adapter_config.json")
    try:
        wrapped = peft.PeftModel.from_pretrained(model, str(a), is_trainable=False)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load the adapter in {str(a)!r}: {exc}") from exc
    return wrapped.merge_and_unload()
