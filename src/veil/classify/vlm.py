"""Zero-shot (and LoRA-tuned) vision-language models as safety classifiers.

A :class:`VLMClassifier` asks a VLM, for every category and with its
definition, whether the image is safe or unsafe — UnsafeBench's protocol:

* several prompt phrasings per category (:data:`DEFAULT_PROMPTS`);
* each answer is parsed strictly (:func:`veil.vlm.parse.parse_answer`) to
  ``safe`` / ``unsafe`` / ``unsure``;
* the category's label is the majority vote; a tie or an ``unsure`` majority
  stays ``unsure`` (reported in :attr:`VLMClassifier.last_details`, never
  randomized).

The score of a category (the ``predict_proba`` column) comes from the answer
tokens' probabilities where the backend exposes them: at the step where the
verdict is written, ``P(unsafe-ish token) / (P(unsafe-ish) + P(safe-ish))``,
averaged over prompts; so AUROC and thresholds work. Without log-probabilities
it is the vote fraction ``(unsafe + unsure_weight · unsure) / votes``.

In ``"perspective"`` mode (a PerspectiveVision-style model trained with
:func:`veil.moderator.train.train_moderator`) each category gets one prompt
listing only that category, answered as ``Safety Status: …, Unsafe Category: …``;
the transformers backend forces the ``Safety Status:`` prefix so the score is
the probability of ``Unsafe`` vs ``Safe`` right after it.

The backends are :mod:`veil.vlm` transports (:class:`veil.vlm.VLMBackend`):
:class:`veil.vlm.hf.TransformersVLM` (a local LLaVA / InstructBLIP / Qwen2-VL folder,
optionally with a LoRA adapter) and :class:`veil.vlm.openai_compat.OpenAIVLM`.

Model cards (``"type": "vlm"`` or ``"vlm-lora"``) make them loadable by
``load_classifier("card.json")`` and ``--model card.json``::

    {"type": "vlm", "backend": "transformers", "model_dir": "llava-1.5-7b-hf",
     "categories": ["sexual", "violence"], "prompts": ["Is this image safe or unsafe …"]}
    {"type": "vlm", "backend": "openai", "base_url": "http://127.0.0.1:8000/v1",
     "model": "Qwen2-VL-7B-Instruct"}
    {"type": "vlm-lora", "base_model": "llava-1.5-7b-hf", "adapter": "adapter",
     "categories": {...}, "training": {...}}

Relative paths are relative to the card.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from veil.errors import CapabilityError, InvalidParameterError, ModelLoadError
from veil.vlm.base import BackendError, Steps, VLMBackend

__all__ = [
    "DEFAULT_PROMPTS",
    "VLM_CARD_TYPES",
    "VLMClassifier",
    "is_vlm_card",
    "load_vlm_card",
    "verdict_probability",
    "check_vlm_card_type",
    "write_vlm_card",
]

#: Card ``type`` values routed here by :func:`veil.classify.load_classifier`.
VLM_CARD_TYPES: tuple[str, ...] = ("vlm", "vlm-lora")

#: Zero-shot phrasings; ``{title}``, ``{definition}`` and ``{category}`` are filled per category.
DEFAULT_PROMPTS: tuple[dict[str, Any], ...] = (
    {
        "text": "Is this image safe or unsafe with respect to {title}, defined as: {definition}? "
        'Answer with one word: "safe" or "unsafe".',
        "yes_means": None,
    },
    {
        "text": "An image is unsafe if it contains {title} ({definition}); otherwise it is safe. "
        'Classify this image. Answer "safe" or "unsafe".',
        "yes_means": None,
    },
    {
        "text": 'Does this image contain {title}, that is, {definition}? Answer "yes" or "no".',
        "yes_means": "unsafe",
    },
)

#: System message sent to chat endpoints.
SYSTEM = "You are a careful content moderator. Answer only in the format the user asks for."

_WORDS = {"unsafe": ("unsafe",), "safe": ("safe",)}
_YES_UNSAFE = {"unsafe": ("yes",), "safe": ("no",)}
_YES_SAFE = {"unsafe": ("no",), "safe": ("yes",)}
_PREFIX = "Safety Status:"


def _norm_token(token: str) -> str:
    return token.replace("Ġ", "").replace("▁", "").strip().strip("\"'*`.,:;!").lower()


def _token_label(token: str, groups: Mapping[str, Sequence[str]]) -> str | None:
    t = _norm_token(token)
    if not t:
        return None
    if not t.isalpha():
        return None
    # A prefix counts: tokenizers often split "unsafe" as "un" + "safe" or "u" + "nsafe".
    hits = {lab for lab, words in groups.items() for w in words if w.startswith(t)}
    return hits.pop() if len(hits) == 1 else None


def verdict_probability(
    steps: Sequence[tuple[str, Mapping[str, float]]] | None,
    groups: Mapping[str, Sequence[str]] = _WORDS,
    *,
    after: str | None = None,
    prefix: str = "",
) -> float | None:
    """``P(unsafe) / (P(unsafe) + P(safe))`` at the step where the verdict is written.

    Parameters
    ----------
    steps : list of (token, {alternative: log-prob})
        Per generated token, as returned by the backends' ``complete``.
    groups : mapping
        ``{"unsafe": words, "safe": words}``; a token counts for a group when its
        normalized text (letters only) is a word or a prefix of one (``"un"`` → unsafe);
        a token that fits both groups counts for neither.
    after : str, optional
        Only look at steps after the text so far (``prefix`` + tokens) contains this
        (case-insensitive), e.g. ``"status:"``.
    prefix : str
        Text forced before the generated tokens.

    Returns
    -------
    float or None
        ``None`` when no step carries probability for either group.

    Examples
    --------
    >>> steps = [("unsafe", {"unsafe": math.log(0.6), "safe": math.log(0.2), "the": math.log(0.2)})]
    >>> round(verdict_probability(steps), 3)
    0.75
    """
    if not steps:
        return None
    text = prefix
    eligible: list[int] = []
    for i, (tok, _) in enumerate(steps):
        if after is None or after.lower() in text.lower():
            eligible.append(i)
        text += tok
    chosen = next((i for i in eligible if _token_label(steps[i][0], groups) is not None), None)
    order = [chosen] if chosen is not None else eligible[:1]
    for i in order:
        mass = dict.fromkeys(groups, 0.0)
        for alt, lp in steps[i][1].items():
            lab = _token_label(alt, groups)
            if lab is not None and math.isfinite(lp):
                mass[lab] += math.exp(lp)
        total = mass["unsafe"] + mass["safe"]
        if total > 0:
            return float(mass["unsafe"] / total)
    return None


def _prompt_specs(prompts: Sequence[str | Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    if prompts is None:
        return [dict(p) for p in DEFAULT_PROMPTS]
    if isinstance(prompts, (str, bytes)) or not prompts:
        raise InvalidParameterError(f"prompts must be a non-empty list of strings or {{text, yes_means}}, got {prompts!r}")
    out = []
    for i, p in enumerate(prompts):
        spec: dict[str, Any] = {"text": p, "yes_means": None} if isinstance(p, str) else dict(p)
        if not isinstance(spec.get("text"), str) or not spec["text"].strip():
            raise InvalidParameterError(f"prompts[{i}] needs a non-empty 'text', got {p!r}")
        if spec.get("yes_means") not in (None, "safe", "unsafe"):
            raise InvalidParameterError(f"prompts[{i}]['yes_means'] must be 'safe', 'unsafe' or null")
        try:
            spec["text"].format(title="t", definition="d", category="c")
        except (KeyError, IndexError, ValueError) as exc:
            raise InvalidParameterError(
                f"prompts[{i}] may only use the fields {{title}}, {{definition}}, {{category}}: {exc}"
            ) from None
        out.append({"text": spec["text"], "yes_means": spec.get("yes_means")})
    return out


class VLMClassifier:
    """A :class:`~veil.classify.base.Classifier` that asks a VLM about each category.

    Parameters
    ----------
    backend : VLMBackend
        A :mod:`veil.vlm` transport (``complete(image, text, …) -> (answer, steps)``).
    categories : list of names or {name: definition}, optional
        The labels, one per category; default UnsafeBench's eleven.
    prompts : list of str or {"text", "yes_means"}, optional
        Zero-shot phrasings (default :data:`DEFAULT_PROMPTS`); ignored in perspective mode.
    mode : {"zero-shot", "perspective"}
        How questions are asked and answers parsed (see the module docstring).
    name : str
        Classifier name in results.
    threshold : float
        Unsafe-score threshold in (0, 1).
    max_new_tokens : int
        Generated-token cap per answer.
    unsure_weight : float
        Weight of an ``unsure`` vote in the vote-fraction score (used without log-probs).
    use_logprobs : bool
        Score from token probabilities where available.

    Attributes
    ----------
    last_details : list of dict
        Per image of the last ``predict_proba`` call: per category the majority label
        (``safe`` / ``unsafe`` / ``unsure``), vote counts, score and its source, and every
        raw answer with its parsed verdict.

    Examples
    --------
    >>> from veil.vlm.hf import TransformersVLM  # doctest: +SKIP
    >>> clf = VLMClassifier(TransformersVLM("llava"), categories=["sexual"])  # doctest: +SKIP
    >>> clf.predict_proba([image])  # doctest: +SKIP
    """

    def __init__(
        self,
        backend: VLMBackend,
        *,
        categories: Sequence[str] | Mapping[str, str] | None = None,
        prompts: Sequence[str | Mapping[str, Any]] | None = None,
        mode: str = "zero-shot",
        name: str = "vlm",
        threshold: float = 0.5,
        max_new_tokens: int = 16,
        unsure_weight: float = 0.5,
        use_logprobs: bool = True,
        system: str | None = SYSTEM,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        from veil.vlm.prompts import category_definitions

        if not isinstance(backend, VLMBackend):
            raise CapabilityError(
                f"backend {type(backend).__name__} is not a VLMBackend (it needs complete(image, text) "
                "and forces_prefix); use the transformers or openai backend (veil.vlm.load_vlm)"
            )
        if mode not in ("zero-shot", "perspective"):
            raise InvalidParameterError(f"mode must be 'zero-shot' or 'perspective', got {mode!r}")
        if not 0.0 < float(threshold) < 1.0:
            raise InvalidParameterError(f"threshold must lie in (0, 1), got {threshold}")
        if int(max_new_tokens) < 1:
            raise InvalidParameterError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if not 0.0 <= float(unsure_weight) <= 1.0:
            raise InvalidParameterError(f"unsure_weight must lie in [0, 1], got {unsure_weight}")
        self.backend = backend
        self.definitions = category_definitions(categories)
        self.prompts = _prompt_specs(prompts)
        self.mode = mode
        self.name = str(name)
        self.labels: tuple[str, ...] = tuple(self.definitions)
        self.unsafe_labels: tuple[str, ...] = self.labels
        self.threshold = float(threshold)
        self.max_new_tokens = int(max_new_tokens)
        self.unsure_weight = float(unsure_weight)
        self.use_logprobs = bool(use_logprobs)
        self.system = system
        self.config: dict[str, Any] = {
            "type": "vlm",
            "backend": getattr(backend, "name", type(backend).__name__),
            "mode": mode,
            "categories": dict(self.definitions),
            "prompts": self.prompts if mode == "zero-shot" else None,
            "threshold": self.threshold,
            "unsure_weight": self.unsure_weight,
            **dict(config or {}),
        }
        self.last_details: list[dict[str, Any]] = []

    # -- questions --------------------------------------------------------------------------
    def questions(self, category: str) -> list[dict[str, Any]]:
        """The prompts asked about ``category``: ``text``, ``yes_means`` and ``perspective``."""
        if category not in self.definitions:
            raise InvalidParameterError(f"unknown category {category!r}; labels: {list(self.labels)}")
        if self.mode == "perspective":
            from veil.vlm.prompts import build_prompt

            return [{"text": build_prompt([category], self.definitions), "yes_means": None,
                     "perspective": True}]
        title = category.replace("_", " ")
        try:
            from veil.taxonomy import get_category

            title = get_category(category).title
        except (KeyError, ValueError):
            pass  # a custom category: its name is its title
        return [{"text": p["text"].format(title=title, definition=self.definitions[category],
                                          category=category),
                 "yes_means": p["yes_means"], "perspective": False} for p in self.prompts]

    def _complete(self, image: np.ndarray, text: str, *, perspective: bool,
                  words: Mapping[str, Sequence[str]]) -> tuple[str, Steps | None, str]:
        if self.backend.forces_prefix:  # a local model: force the prefix, score the answer words
            prefix = _PREFIX if perspective else None
            cands = [v for ws in words.values() for w in ws for v in (w, w.capitalize(), " " + w, " " + w.capitalize())]
            answer, steps = self.backend.complete(
                image, text, prefix=prefix, max_new_tokens=self.max_new_tokens, candidates=cands
            )
            if prefix:
                return f"{prefix} {answer}".strip(), steps, prefix
            return answer, steps, ""
        top = 5 if self.use_logprobs else None
        try:
            answer, steps = self.backend.complete(image, text, system=self.system,
                                                  max_new_tokens=self.max_new_tokens, top_logprobs=top)
        except BackendError as exc:
            if top is None or not str(exc).startswith("HTTP 400"):
                raise
            # Some servers reject the logprobs option: ask once more without it, and stop asking.
            self.use_logprobs = False
            answer, steps = self.backend.complete(image, text, system=self.system,
                                                  max_new_tokens=self.max_new_tokens, top_logprobs=None)
        return answer, steps, ""

    def moderate(self, image: np.ndarray) -> dict[str, Any]:
        """Ask about every category; the per-category verdicts and the scores row.

        Returns
        -------
        dict
            ``{"categories": {cat: {label, votes, score, score_source, answers}},
            "unsafe_categories": [...], "unsure_categories": [...]}``.
        """
        from veil.image import as_rgb_uint8
        from veil.vlm.parse import majority_vote, parse_answer, parse_perspective

        img = as_rgb_uint8(image)
        out: dict[str, Any] = {"categories": {}}
        for cat in self.labels:
            answers = []
            for q in self.questions(cat):
                if q["perspective"]:
                    words: Mapping[str, Sequence[str]] = _WORDS
                elif q["yes_means"] == "unsafe":
                    words = _YES_UNSAFE
                elif q["yes_means"] == "safe":
                    words = _YES_SAFE
                else:
                    words = _WORDS
                text, steps, prefix = self._complete(img, q["text"], perspective=q["perspective"], words=words)
                if q["perspective"]:
                    verdict = parse_perspective(text, categories=[cat])
                    p = verdict_probability(steps, words, after="status:", prefix=prefix)
                else:
                    verdict = parse_answer(text, yes_means=q["yes_means"])
                    p = verdict_probability(steps, words)
                answers.append({**verdict.to_dict(), "prompt": q["text"],
                                "p_unsafe": None if p is None or not self.use_logprobs else round(p, 6)})
            label, votes = majority_vote([a["label"] for a in answers])
            ps = [a["p_unsafe"] for a in answers if a["p_unsafe"] is not None]
            if ps:
                score, source = float(np.mean(ps)), "logprobs"
            else:
                n = max(1, sum(votes.values()))
                score, source = (votes["unsafe"] + self.unsure_weight * votes["unsure"]) / n, "votes"
            out["categories"][cat] = {"label": label, "votes": votes, "score": round(score, 6),
                                      "score_source": source, "answers": answers}
        out["unsafe_categories"] = [c for c, d in out["categories"].items() if d["label"] == "unsafe"]
        out["unsure_categories"] = [c for c, d in out["categories"].items() if d["label"] == "unsure"]
        return out

    # -- Classifier protocol ----------------------------------------------------------------
    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Per-category unsafe scores ``(N, K)``; details of the votes go to :attr:`last_details`."""
        if isinstance(images, np.ndarray) and images.ndim == 3:
            raise InvalidParameterError(
                f"predict_proba takes a batch (a list of images), got one image of shape {images.shape}"
            )
        details = [self.moderate(img) for img in images]
        self.last_details = details
        proba = np.array([[d["categories"][c]["score"] for c in self.labels] for d in details],
                         dtype=np.float32).reshape(len(details), len(self.labels))
        return proba

    def unsafe_score(self, proba: np.ndarray) -> np.ndarray:
        """The largest category score per image."""
        p = np.asarray(proba, dtype=np.float32)
        if p.ndim != 2 or p.shape[1] != len(self.labels):
            raise InvalidParameterError(
                f"proba must have shape (N, {len(self.labels)}), got {p.shape}"
            )
        return p.max(axis=1)


# -- model cards --------------------------------------------------------------------------------
_BACKEND_KEYS = {
    "transformers": {"model_dir", "device", "dtype"},
    "openai": {"base_url", "model", "api_key_env", "timeout", "retries", "max_side"},
}


def _read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"model card {str(path)!r}: cannot read JSON ({exc})") from exc


def is_vlm_card(path: str | Path) -> bool:
    """Whether ``path`` is a readable JSON object with ``"type"`` ``"vlm"`` or ``"vlm-lora"``."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(obj, dict) and obj.get("type") in VLM_CARD_TYPES


def _resolve(base: Path, value: Any, key: str, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ModelLoadError(f"model card {path!r}, key {key!r}: must be a non-empty path string, got {value!r}")
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else base / p)


def load_vlm_card(path: str | Path, *, backend: VLMBackend | None = None, **overrides: Any) -> VLMClassifier:
    """Build a :class:`VLMClassifier` from a ``"vlm"`` / ``"vlm-lora"`` model card.

    Parameters
    ----------
    path : path
        The card.
    backend : object, optional
        An already-created backend to reuse instead of the one the card describes.
    **overrides
        Card keys to override (``device="cpu"``, ``threshold=0.3``, …).

    Raises
    ------
    ModelLoadError
        Naming the card, the key and the fix.
    """
    text = str(path)
    card = _read_json(path)
    if not isinstance(card, dict) or card.get("type") not in VLM_CARD_TYPES:
        raise ModelLoadError(f"model card {text!r}: \"type\" must be one of {list(VLM_CARD_TYPES)}")
    card = {**card, **overrides}
    kind = card["type"]
    base = Path(path).parent
    name = card.get("name") or Path(path).stem
    mode = card.get("mode") or ("perspective" if kind == "vlm-lora" else "zero-shot")
    if backend is None:
        if kind == "vlm-lora":
            from veil.vlm.hf import TransformersVLM

            for key in ("base_model", "adapter"):
                if key not in card:
                    raise ModelLoadError(f"model card {text!r}: missing key {key!r} (a vlm-lora card records "
                                         "the base model folder and the adapter folder)")
            backend = TransformersVLM(
                _resolve(base, card["base_model"], "base_model", text), device=card.get("device"),
                dtype=card.get("dtype"), adapter=_resolve(base, card["adapter"], "adapter", text),
            )
        else:
            which = card.get("backend", "transformers")
            if which not in _BACKEND_KEYS:
                raise ModelLoadError(f"model card {text!r}, key 'backend': must be 'transformers' or 'openai', got {which!r}")
            if which == "transformers":
                from veil.vlm.hf import TransformersVLM

                if "model_dir" not in card:
                    raise ModelLoadError(f"model card {text!r}: missing key 'model_dir' (the local model folder)")
                backend = TransformersVLM(_resolve(base, card["model_dir"], "model_dir", text),
                                              device=card.get("device"), dtype=card.get("dtype"))
            else:
                from veil.vlm.openai_compat import OpenAIVLM

                opts = {k: card[k] for k in _BACKEND_KEYS["openai"] if k in card}
                backend = OpenAIVLM(**opts)
    keep = {k: v for k, v in card.items() if k not in ("categories", "prompts")}
    try:
        return VLMClassifier(
            backend, categories=card.get("categories"), prompts=card.get("prompts"), mode=mode,
            name=name, threshold=card.get("threshold", 0.5),
            max_new_tokens=card.get("max_new_tokens", 16),
            unsure_weight=card.get("unsure_weight", 0.5),
            use_logprobs=card.get("use_logprobs", True),
            system=card.get("system", SYSTEM), config={**keep, "card": text, "type": kind},
        )
    except InvalidParameterError as exc:
        raise ModelLoadError(f"model card {text!r}: {exc}") from exc


def check_vlm_card_type(card: Mapping[str, Any], path: str | Path | None = None) -> None:
    """Raise :class:`InvalidParameterError` unless ``card['type']`` is ``"vlm"`` or ``"vlm-lora"``."""
    if card.get("type") not in VLM_CARD_TYPES:
        raise InvalidParameterError(f"card['type'] must be one of {list(VLM_CARD_TYPES)}, got {card.get('type')!r}")


def write_vlm_card(path: str | Path, card: Mapping[str, Any]) -> Path:
    """Write a ``"vlm"`` / ``"vlm-lora"`` card as pretty JSON; returns the path."""
    check_vlm_card_type(card)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(dict(card), indent=2) + "\n", encoding="utf-8")
    return p
