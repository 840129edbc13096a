"""CLIP-based safety classifiers used by UnsafeBench, loaded from local files only.

A CLIP image backbone (a ``transformers`` ``CLIPModel`` or
``CLIPVisionModelWithProjection`` folder written by ``save_pretrained``) turns an
image into an embedding; a small head the user supplies turns the embedding into
scores. Four heads are provided, chosen by the model card's ``"type"``:

``clip-q16``
    Q16 (Schramowski et al.): softmax of ``logit_scale`` × cosine similarity between the
    image embedding and ``K`` learned prompt embeddings. Head file: a ``(K, D)`` tensor,
    or ``{"prompts": (K, D)}``. Default labels ``["safe", "unsafe"]``.
``clip-multiheaded``
    MultiHeaded safety classifier (Qu et al.): one binary MLP per category on the
    image embedding (five in the paper: sexual, violent, disturbing, hateful,
    political). Head file: ``{head: state_dict}`` or a flat state_dict with
    ``"<head>."`` prefixes. Each head's sigmoid is one output; the unsafe score is the
    largest. Default labels: the head names.
``clip-laion-nsfw``
    LAION CLIP-based NSFW detector: an MLP on the L2-normalized embedding ending in one
    logit (sigmoid). Head file: the MLP's state_dict (``"0.weight"``, ``"2.weight"``…
    in order). Default labels ``["safe", "nsfw"]``.
``clip-sd-safety``
    Stable Diffusion safety checker: cosine similarity to ``concept_embeds`` minus
    ``concept_embeds_weights`` (plus 0.01 when a ``special_care_embeds`` concept fires);
    unsafe when any concept score is positive. Head file: those four tensors. The
    probability is ``sigmoid(max concept score / temperature)`` (``temperature`` 0.01), so
    0.5 is the checker's own decision boundary. Default labels ``["safe", "nsfw"]``.

Card (JSON, paths relative to the card)::

    {"type": "clip-q16", "backbone": "clip-vit-large-patch14", "head": "q16_prompts.pt",
     "name": "q16", "categories": ["sexual", "violence", "hate"]}

Optional keys: ``labels``, ``unsafe_labels``, ``threshold`` (0.5), ``name`` (the card's
stem), ``categories`` (``{label: category}`` or a list of covered categories),
``input_size``, ``mean``, ``std`` (default: the backbone's image size and CLIP's
normalization), ``logit_scale`` (Q16, 100), ``activation`` (MLP heads, ``"relu"``),
``normalize_embedding`` (MLP heads; LAION default true, MultiHeaded false),
``temperature`` (SD checker, 0.01), ``description``. Nothing is downloaded.

The classifiers expose ``torch_module``, ``torch_input`` and ``torch_unsafe_score``
(enough for the robustness attacks of :mod:`veil.bench.attacks`) but no Grad-CAM
target layers, so the pipeline explains them with occlusion.

Examples
--------
>>> clf = load_clip_card("models/q16.json")  # doctest: +SKIP
>>> clf.predict_proba([image]).shape  # doctest: +SKIP
(1, 2)
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from veil.errors import InvalidParameterError, ModelLoadError, require
from veil.image import as_rgb_uint8

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "CLIP_TYPES",
    "ClipClassifier",
    "is_clip_card",
    "load_clip_card",
    "mlp_from_state_dict",
]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: Card ``"type"`` values this module loads.
CLIP_TYPES: tuple[str, ...] = ("clip-q16", "clip-multiheaded", "clip-laion-nsfw", "clip-sd-safety")


def _fail(path: str, key: str | None, problem: str, fix: str = "") -> ModelLoadError:
    where = f"CLIP model card {path!r}" + (f", key {key!r}" if key else "")
    return ModelLoadError(f"{where}: {problem}" + (f"; fix: {fix}" if fix else ""))


def mlp_from_state_dict(state: Mapping[str, Any], *, activation: str = "relu", where: str = "head") -> Any:
    """Rebuild an MLP (Linear layers with ``activation`` between them) from its state_dict.

    Linear layers are the 2-D ``*.weight`` tensors, taken in the order of the last
    integer in their key (``"0.weight"``, ``"layers.2.weight"``…); dropout and other
    parameter-free layers need no weights and are left out (the head runs in eval mode).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Dropout(), torch.nn.Linear(3, 1))
    >>> mlp = mlp_from_state_dict(net.state_dict())
    >>> x = torch.randn(2, 4)
    >>> bool(torch.allclose(mlp(x), net.eval()(x)))
    True
    """
    import torch

    acts = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU, "tanh": torch.nn.Tanh, "silu": torch.nn.SiLU}
    if activation not in acts:
        raise InvalidParameterError(f"activation {activation!r} is unknown; use one of {', '.join(acts)}")

    def order(key: str) -> tuple[int, str]:
        nums = re.findall(r"\d+", key)
        return (int(nums[-1]) if nums else -1, key)

    weights = sorted((k for k, v in state.items() if k.endswith("weight") and getattr(v, "ndim", 0) == 2), key=order)
    if not weights:
        raise InvalidParameterError(f"{where}: no 2-D '*.weight' tensors (Linear layers) in the state_dict")
    layers: list[torch.nn.Module] = []
    prev_out: int | None = None
    for i, wk in enumerate(weights):
        w = torch.as_tensor(state[wk]).float()
        bk = wk[: -len("weight")] + "bias"
        if prev_out is not None and w.shape[1] != prev_out:
            raise InvalidParameterError(
                f"{where}: layer {wk!r} expects {w.shape[1]} inputs but the previous layer gives {prev_out}"
            )
        lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=bk in state)
        with torch.no_grad():
            lin.weight.copy_(w)
            if bk in state:
                lin.bias.copy_(torch.as_tensor(state[bk]).float())
        layers.append(lin)
        if i < len(weights) - 1:
            layers.append(acts[activation]())
        prev_out = w.shape[0]
    return torch.nn.Sequential(*layers).eval()


def _normalize(e: Any) -> Any:
    return e / e.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _heads_module(kind: str, head: Mapping[str, Any], card: Mapping[str, Any], path: str) -> tuple[Any, list[str]]:
    """``(module mapping embeddings (N, D) to log-scores (N, K), default labels)`` for a head type."""
    import torch

    class Q16(torch.nn.Module):
        prompts: torch.Tensor

        def __init__(self, prompts: torch.Tensor, scale: float) -> None:
            super().__init__()
            self.register_buffer("prompts", _normalize(prompts.float()))
            self.scale = scale

        def forward(self, e: torch.Tensor) -> torch.Tensor:  # log-softmax over prompts
            return torch.log_softmax(self.scale * _normalize(e) @ self.prompts.T, dim=-1)

    class Multi(torch.nn.Module):
        def __init__(self, heads: dict[str, torch.nn.Module], normalize: bool) -> None:
            super().__init__()
            self.heads = torch.nn.ModuleDict(heads)
            self.normalize = normalize

        def forward(self, e: torch.Tensor) -> torch.Tensor:  # per-head logits
            e = _normalize(e) if self.normalize else e
            outs = [h(e) for h in self.heads.values()]
            # one logit per head; a two-logit [safe, unsafe] head becomes their difference
            return torch.cat([o[:, 1:2] - o[:, :1] if o.shape[1] == 2 else o[:, :1] for o in outs], dim=1)

    class SD(torch.nn.Module):
        concepts: torch.Tensor
        concept_w: torch.Tensor
        special: torch.Tensor
        special_w: torch.Tensor

        def __init__(self, t: Mapping[str, torch.Tensor], temperature: float) -> None:
            super().__init__()
            self.register_buffer("concepts", _normalize(t["concept_embeds"].float()))
            self.register_buffer("concept_w", t["concept_embeds_weights"].float())
            self.register_buffer("special", _normalize(t["special_care_embeds"].float()))
            self.register_buffer("special_w", t["special_care_embeds_weights"].float())
            self.temperature = temperature

        def forward(self, e: torch.Tensor) -> torch.Tensor:  # one logit: max concept score / T
            e = _normalize(e)
            special = (e @ self.special.T - self.special_w).amax(dim=1)
            adjust = (special > 0).float() * 0.01
            score = (e @ self.concepts.T - self.concept_w).amax(dim=1) + adjust
            return (score / self.temperature)[:, None]

    act = str(card.get("activation", "relu"))
    try:
        if kind == "clip-q16":
            prompts = head.get("prompts", head.get("", None))
            if not isinstance(prompts, torch.Tensor) or prompts.ndim != 2:
                raise _fail(path, "head", "the Q16 head must hold a (K, D) prompt tensor (alone or under 'prompts')",
                            "save it with torch.save({'prompts': tensor}, path)")
            return Q16(prompts, float(card.get("logit_scale", 100.0))), (
                ["safe", "unsafe"] if prompts.shape[0] == 2 else [f"prompt_{i}" for i in range(prompts.shape[0])])
        if kind == "clip-multiheaded":
            groups: dict[str, dict[str, Any]] = {}
            for k, v in head.items():
                if isinstance(v, Mapping):
                    groups[k] = dict(v)
                else:
                    name, dot, rest = k.partition(".")
                    if not dot:
                        raise _fail(path, "head", f"key {k!r} has no '<head>.' prefix",
                                    "save {head_name: state_dict} or prefix keys with the head name")
                    groups.setdefault(name, {})[rest] = v
            order = card.get("heads") or list(groups)
            missing = [h for h in order if h not in groups]
            if missing:
                raise _fail(path, "heads", f"{missing} are not in the head file (has {sorted(groups)})")
            mods = {h: mlp_from_state_dict(groups[h], activation=act, where=f"head {h!r}") for h in order}
            return Multi(mods, bool(card.get("normalize_embedding", False))), list(order)
        if kind == "clip-laion-nsfw":
            mlp = mlp_from_state_dict(head, activation=act, where="LAION head")
            return Multi({"nsfw": mlp}, bool(card.get("normalize_embedding", True))), ["safe", "nsfw"]
        needed = ("concept_embeds", "concept_embeds_weights", "special_care_embeds", "special_care_embeds_weights")
        absent = [k for k in needed if k not in head]
        if absent:
            raise _fail(path, "head", f"the safety-checker head lacks {absent}",
                        "save the four tensors of StableDiffusionSafetyChecker with torch.save({...}, path)")
        return SD({k: torch.as_tensor(head[k]) for k in needed}, float(card.get("temperature", 0.01))), [
            "safe", "nsfw"]
    except InvalidParameterError as exc:
        raise _fail(path, "head", str(exc)) from exc


class ClipClassifier:
    """A CLIP image backbone plus a head (see the module docstring for the four kinds).

    Parameters
    ----------
    backbone : torch.nn.Module
        A ``CLIPModel`` or ``CLIPVisionModelWithProjection`` (anything with ``vision_model``
        and ``visual_projection``), or any module mapping pixels to embeddings.
    head : torch.nn.Module
        Maps embeddings ``(N, D)`` to log-scores: log-probabilities (``kind="clip-q16"``)
        or one logit per output (the other kinds).
    kind : str
        One of :data:`CLIP_TYPES`.
    labels, unsafe_labels : sequences of str
        Output names; which are unsafe.

    Examples
    --------
    >>> clf = ClipClassifier(backbone, head, "clip-q16", ["safe", "unsafe"], ["unsafe"])  # doctest: +SKIP
    """

    def __init__(self, backbone: Any, head: Any, kind: str, labels: Sequence[str], unsafe_labels: Sequence[str], *,
                 input_size: int = 224, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD,
                 threshold: float = 0.5, name: str = "clip", batch_size: int = 16,
                 config: dict[str, Any] | None = None) -> None:
        import torch

        if kind not in CLIP_TYPES:
            raise InvalidParameterError(f"kind {kind!r} is unknown; use one of {', '.join(CLIP_TYPES)}")
        self.labels = tuple(str(x) for x in labels)
        bad = [u for u in unsafe_labels if u not in self.labels]
        if bad or not unsafe_labels:
            raise InvalidParameterError(f"unsafe_labels {list(unsafe_labels)} must be a non-empty subset of "
                                        f"labels {list(self.labels)}")
        if not 0.0 < threshold < 1.0:
            raise InvalidParameterError(f"threshold must lie in (0, 1), got {threshold}")
        self.backbone = backbone.eval()
        self.head = head.eval()
        self.module = torch.nn.ModuleDict({"backbone": self.backbone, "head": self.head})
        self.kind = kind
        self.unsafe_labels = tuple(str(x) for x in unsafe_labels)
        self.input_size = int(input_size)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.threshold = float(threshold)
        self.name = name
        self.batch_size = int(batch_size)
        self.config = dict(config or {})
        self._unsafe_idx = [self.labels.index(u) for u in self.unsafe_labels]

    # -- preprocessing ------------------------------------------------------------------------
    def preprocess(self, images: Sequence[np.ndarray]) -> Any:
        """CLIP preprocessing: shorter side to ``input_size`` (bicubic), centre crop, normalize."""
        import torch
        import torch.nn.functional as F

        out = []
        s = self.input_size
        for img in images:
            arr = as_rgb_uint8(img)
            t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].float().div_(255.0)
            h, w = t.shape[-2:]
            scale = s / min(h, w)
            nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
            if (nh, nw) != (h, w):
                t = F.interpolate(t, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True).clamp_(0, 1)
            top, left = (nh - s) // 2, (nw - s) // 2
            out.append(t[..., top : top + s, left : left + s])
        return (torch.cat(out, 0) - self.mean) / self.std

    def embed(self, x: Any) -> Any:
        """Image embeddings ``(N, D)`` of a preprocessed batch."""
        bb = self.backbone
        if hasattr(bb, "vision_model") and hasattr(bb, "visual_projection"):
            return bb.visual_projection(bb.vision_model(pixel_values=x).pooler_output)
        return bb(x)

    def _log_scores(self, x: Any) -> Any:
        return self.head(self.embed(x).float())

    def _proba(self, z: Any) -> Any:
        import torch

        if self.kind == "clip-q16":
            return z.exp()
        p = torch.sigmoid(z)
        if len(self.labels) == 2 and p.shape[1] == 1:  # one logit → [safe, unsafe]
            return torch.cat([1 - p, p], dim=1)
        return p

    # -- Classifier ---------------------------------------------------------------------------
    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                out.append(self._proba(self._log_scores(self.preprocess(images[i : i + self.batch_size]))).numpy())
        if not out:
            return np.zeros((0, len(self.labels)), np.float32)
        return np.concatenate(out, 0).astype(np.float32)

    def unsafe_score(self, proba: np.ndarray) -> np.ndarray:
        """Summed unsafe probability (Q16, two-label heads) or the largest head (MultiHeaded)."""
        p = np.asarray(proba)[:, self._unsafe_idx]
        if self.kind == "clip-multiheaded":
            return p.max(axis=1)
        return np.clip(p.sum(axis=1), 0.0, 1.0)

    # -- gradients (robustness attacks) ---------------------------------------------------------
    def torch_module(self) -> Any:
        return self.module

    def torch_input(self, image: np.ndarray) -> Any:
        return self.preprocess([image])

    def torch_unsafe_score(self, x: Any) -> Any:
        """Log-odds of :meth:`unsafe_score` for a preprocessed batch (differentiable)."""
        import torch

        z = self._log_scores(x)
        if self.kind == "clip-q16":
            mask = torch.zeros(z.shape[1], dtype=torch.bool)
            mask[self._unsafe_idx] = True
            if bool(mask.all()):
                return torch.logsumexp(z, dim=1)
            return torch.logsumexp(z[:, mask], dim=1) - torch.logsumexp(z[:, ~mask], dim=1)
        if len(self.labels) == 2 and z.shape[1] == 1:
            return z[:, 0]
        return z.amax(dim=1)  # logit of the largest head


def is_clip_card(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a JSON object whose ``"type"`` starts with ``"clip-"``."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(raw, dict) and isinstance(raw.get("type"), str) and raw["type"].startswith("clip-")


def _load_head(file: Path, path: str) -> dict[str, Any]:
    import torch

    if not file.is_file():
        raise _fail(path, "head", f"head file {str(file)!r} does not exist",
                    "put the head weights there or correct the path (relative to the card)")
    try:
        if file.suffix == ".safetensors":
            st: Any = require("safetensors.torch", "clip")
            obj: Any = st.load_file(str(file))
        elif file.suffix == ".npz":
            with np.load(file) as z:
                obj = {k: torch.from_numpy(z[k]) for k in z.files}
        else:
            obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch / safetensors raise many types for unreadable files
        raise _fail(path, "head", f"cannot read {str(file)!r} ({exc})",
                    "save tensors with torch.save (weights only), safetensors or numpy .npz") from exc
    if isinstance(obj, torch.Tensor):
        return {"prompts": obj}
    if not isinstance(obj, Mapping):
        raise _fail(path, "head", f"{str(file)!r} holds a {type(obj).__name__}, not tensors",
                    "save a tensor or a dict of tensors")
    return dict(obj)


def load_clip_card(path: str | os.PathLike[str], *, threshold: float | None = None) -> ClipClassifier:
    """Build the :class:`ClipClassifier` a CLIP model card describes (see the module docstring).

    Raises
    ------
    ModelLoadError
        Unknown ``type``, missing keys or files, a backbone folder transformers cannot read,
        or a head that does not fit the backbone's embedding size.
    MissingDependencyError
        Without ``transformers`` (``pip install veil[clip]``).

    Examples
    --------
    >>> clf = load_clip_card("models/laion_nsfw.json")  # doctest: +SKIP
    """
    import torch

    p = Path(path)
    sp = str(p)
    try:
        card = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(sp, None, f"cannot read it as JSON ({exc})", "pass a UTF-8 JSON model card") from exc
    if not isinstance(card, dict):
        raise _fail(sp, None, "must be a JSON object")
    kind = card.get("type")
    if kind not in CLIP_TYPES:
        raise _fail(sp, "type", f"unknown CLIP head type {kind!r}", f"use one of {', '.join(CLIP_TYPES)}")
    for key in ("backbone", "head"):
        if not isinstance(card.get(key), str) or not card[key]:
            raise _fail(sp, key, f"must be a non-empty path string, got {card.get(key)!r}",
                        "a transformers CLIP folder (backbone) or a weights file (head), relative to the card")
    bdir = p.parent / card["backbone"]
    cfg_file = bdir / "config.json"
    if not cfg_file.is_file():
        raise _fail(sp, "backbone", f"{str(bdir)!r} has no config.json",
                    "point it at a folder written by CLIPModel/CLIPVisionModelWithProjection.save_pretrained")
    transformers: Any = require("transformers", "clip")
    try:
        model_type = json.loads(cfg_file.read_text(encoding="utf-8")).get("model_type")
        cls = transformers.CLIPModel if model_type == "clip" else transformers.CLIPVisionModelWithProjection
        backbone = cls.from_pretrained(str(bdir), local_files_only=True)
    except Exception as exc:  # transformers raises OSError/ValueError/KeyError for bad folders
        raise _fail(sp, "backbone", f"cannot load {str(bdir)!r} with transformers ({type(exc).__name__}: {exc})",
                    "use a CLIP folder saved with save_pretrained (config.json + weights)") from exc
    vcfg = getattr(backbone.config, "vision_config", backbone.config)
    head_mod, default_labels = _heads_module(kind, _load_head(p.parent / card["head"], sp), card, sp)
    labels = card.get("labels") or default_labels
    unsafe = card.get("unsafe_labels") or ([lb for lb in labels if lb != "safe"] if kind != "clip-multiheaded"
                                           else list(labels))
    with torch.no_grad():
        dim = int(backbone.visual_projection.out_features)
        try:
            width = head_mod(torch.zeros(1, dim)).shape[1]
        except RuntimeError as exc:
            raise _fail(sp, "head", f"does not fit the backbone's {dim}-dimensional embedding ({exc})",
                        "use head weights made for this CLIP backbone") from exc
    if kind != "clip-q16" and width == 1 and len(labels) == 2:
        width = 2  # one logit → [safe, unsafe] probabilities
    if width != len(labels):
        raise _fail(sp, "labels", f"has {len(labels)} entries but the head gives {width} outputs",
                    "list one label per output")
    thr = threshold if threshold is not None else card.get("threshold", 0.5)
    if not isinstance(thr, (int, float)) or not 0.0 < float(thr) < 1.0 or math.isnan(float(thr)):
        raise _fail(sp, "threshold", f"must lie in (0, 1), got {thr!r}")
    config = dict(card, card_path=sp, labels=list(labels), unsafe_labels=list(unsafe))
    try:
        return ClipClassifier(
            backbone, head_mod, kind, labels, unsafe,
            input_size=int(card.get("input_size", vcfg.image_size)),
            mean=card.get("mean", CLIP_MEAN), std=card.get("std", CLIP_STD), threshold=float(thr),
            name=str(card.get("name") or p.stem), config=config,
        )
    except InvalidParameterError as exc:
        raise _fail(sp, None, str(exc)) from exc
