"""Model cards: a JSON file that turns a local torchvision / timm checkpoint into a classifier.

A card names the architecture, the ``state_dict`` file (relative to the card), the
label names in output order, which of them are unsafe and the preprocessing::

    {
      "arch": "resnet50",
      "weights": "model.pt",
      "labels": ["safe", "unsafe"],
      "unsafe_labels": ["unsafe"],
      "input_size": 224,
      "mean": [0.485, 0.456, 0.406],
      "std": [0.229, 0.224, 0.225]
    }

Optional keys: ``name`` (default: the card file's stem), ``threshold`` (0.5),
``source`` (``"torchvision"`` or ``"timm"``; default: torchvision first, then timm),
``categories`` (``{label: category}``) and ``description``. Other keys are kept
as they are. Weights are never downloaded.

A card with ``"format": "onnx"`` describes an ONNX graph instead (``"weights":
"model.onnx"``, no ``arch``): see :mod:`veil.classify.onnx` for its keys.
"""

from __future__ import annotations

import difflib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from veil.errors import InvalidParameterError, ModelLoadError

if TYPE_CHECKING:  # pragma: no cover - torch is imported when a card is loaded, not when read
    from veil.classify.torch import TorchClassifier

#: Keys every card must have.
REQUIRED_KEYS: tuple[str, ...] = ("arch", "weights", "labels", "unsafe_labels", "input_size", "mean", "std")
#: Keys a card may have, with their defaults (``name`` defaults to the card's file stem).
OPTIONAL_KEYS: dict[str, Any] = {
    "name": None,
    "threshold": 0.5,
    "source": None,
    "categories": None,
    "description": None,
}

_FIXES = {
    "arch": 'an architecture name such as "resnet50" (torchvision) or "efficientnet_b0" (timm)',
    "weights": 'the path of a state_dict file, relative to the card, e.g. "model.pt"',
    "labels": 'the class names in the model\'s output order, e.g. ["safe", "unsafe"]',
    "unsafe_labels": 'the labels whose summed probability is the unsafe score, e.g. ["unsafe"]',
    "input_size": "the side of the square network input in pixels, e.g. 224",
    "mean": "three per-channel means for pixels scaled to [0, 1], e.g. [0.485, 0.456, 0.406]",
    "std": "three positive per-channel standard deviations, e.g. [0.229, 0.224, 0.225]",
    "name": "a non-empty string",
    "threshold": "a number strictly between 0 and 1, e.g. 0.5",
    "source": '"torchvision", "timm" or leave the key out',
    "categories": 'an object mapping labels to category names, e.g. {"unsafe": "nudity"}',
    "description": "a string",
}


def _fail(path: str, key: str | None, problem: str, fix: str | None = None) -> ModelLoadError:
    where = f"model card {path!r}" + (f", key {key!r}" if key else "")
    fix = fix if fix is not None else (_FIXES.get(key, "") if key else "")
    return ModelLoadError(f"{where}: {problem}" + (f"; fix: {fix}" if fix else ""))


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and bool(np.isfinite(x))


def _string_list(card: Mapping[str, Any], key: str, path: str) -> list[str]:
    value = card[key]
    if (not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value)):
        raise _fail(path, key, f"must be a non-empty list of non-empty strings, got {value!r}")
    if len(set(value)) != len(value):
        dupes = sorted({v for v in value if value.count(v) > 1})
        raise _fail(path, key, f"has duplicate entries {dupes}", "list each label once")
    return list(value)


def is_onnx_card(card: Any) -> bool:
    """Whether a parsed card declares ``"format": "onnx"``."""
    return isinstance(card, Mapping) and card.get("format") == "onnx"


def is_onnx_card_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a readable JSON card with ``"format": "onnx"`` (False on any read error)."""
    try:
        return is_onnx_card(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False


def _validate(card: Any, path: str, *, stem: str) -> dict[str, Any]:
    """Check keys and types; return the card with optional keys filled in."""
    if is_onnx_card(card):
        from veil.classify.onnx import validate_onnx_card

        return validate_onnx_card(card, path, stem=stem)
    if not isinstance(card, Mapping):
        raise _fail(path, None, f"must be a JSON object, got {type(card).__name__}",
                    f"write an object with the keys {', '.join(REQUIRED_KEYS)}")
    fmt = card.get("format", "torch")
    if fmt != "torch":
        raise _fail(path, "format", f"must be \"torch\" (the default) or \"onnx\", got {fmt!r}",
                    "leave it out for a torchvision / timm state_dict, or write \"onnx\" for an ONNX graph")
    missing = [k for k in REQUIRED_KEYS if k not in card]
    if missing:
        raise _fail(path, missing[0], f"missing required key(s) {missing}",
                    "; ".join(f"{k}: {_FIXES[k]}" for k in missing))
    out = dict(card)
    for key in ("arch", "weights"):
        if not isinstance(card[key], str) or not card[key].strip():
            raise _fail(path, key, f"must be a non-empty string, got {card[key]!r}")
    size = card["input_size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 8:
        raise _fail(path, "input_size", f"must be an integer of at least 8, got {size!r}")
    for key in ("mean", "std"):
        value = card[key]
        if not isinstance(value, list) or len(value) != 3 or not all(_is_number(v) for v in value):
            raise _fail(path, key, f"must be a list of 3 numbers, got {value!r}")
    if any(v <= 0 for v in card["std"]):
        raise _fail(path, "std", f"values must be positive, got {card['std']!r}")
    return _validate_common(out, path, stem=stem)


def _validate_common(out: dict[str, Any], path: str, *, stem: str) -> dict[str, Any]:
    """Labels, unsafe labels and the optional keys every card format shares; fills defaults in place."""
    labels = _string_list(out, "labels", path)
    unsafe = _string_list(out, "unsafe_labels", path)
    unknown = [u for u in unsafe if u not in labels]
    if unknown:
        raise _fail(path, "unsafe_labels", f"{unknown} are not in labels {labels}",
                    "use only names listed under \"labels\"")
    for key, default in OPTIONAL_KEYS.items():
        out.setdefault(key, default)
    if out["name"] is None:
        out["name"] = stem
    if not isinstance(out["name"], str) or not out["name"]:
        raise _fail(path, "name", f"must be a non-empty string, got {out['name']!r}")
    thr = out["threshold"]
    if not _is_number(thr) or not 0.0 < thr < 1.0:
        raise _fail(path, "threshold", f"must lie in (0, 1), got {thr!r}")
    if out["source"] not in (None, "torchvision", "timm"):
        raise _fail(path, "source", f"must be \"torchvision\" or \"timm\", got {out['source']!r}")
    cats = out["categories"]
    if cats is not None:
        if not isinstance(cats, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in cats.items()
        ):
            raise _fail(path, "categories", f"must map label strings to category strings, got {cats!r}")
        stray = [k for k in cats if k not in labels]
        if stray:
            raise _fail(path, "categories", f"keys {stray} are not in labels {labels}",
                        "use only names listed under \"labels\"")
    if out["description"] is not None and not isinstance(out["description"], str):
        raise _fail(path, "description", f"must be a string, got {out['description']!r}")
    return out


def _arch_error(arch: str, source: str | None, path: str) -> ModelLoadError | None:
    """None when ``arch`` can be built from ``source``, else an error with close matches."""
    names: list[str] = []
    if source in (None, "torchvision"):
        import torchvision

        tv = torchvision.models.list_models()
        if arch in tv:
            return None
        names += tv
    if source in (None, "timm"):
        import timm

        if timm.is_model(arch):
            return None
        names += timm.list_models()
    close = difflib.get_close_matches(arch, names, n=5)
    where = "torchvision and timm" if source is None else source
    hint = f"did you mean one of {close}? " if close else ""
    return _fail(path, "arch", f"unknown architecture {arch!r} (looked in {where})",
                 f"{hint}use a name from torchvision.models.list_models() or timm.list_models()")


def read_model_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a model card (torch or ONNX); return it with optional keys filled in.

    Checks keys and types, that ``unsafe_labels`` are labels, that the weights file
    exists and that the architecture is known. The ``state_dict`` itself is checked
    by :func:`load_model_card`, an ONNX graph by :func:`veil.classify.onnx.load_onnx_card`.

    Raises
    ------
    ModelLoadError
        Naming the card, the offending key and how to fix it.

    Examples
    --------
    >>> card = read_model_card("models/nsfw_resnet50.json")  # doctest: +SKIP
    >>> card["labels"]  # doctest: +SKIP
    ['safe', 'unsafe']
    """
    p = Path(path)
    text_path = str(p)
    if not p.is_file():
        raise _fail(text_path, None, "file does not exist" if not p.exists() else "is not a file",
                    "pass the path of a model card .json file")
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise _fail(text_path, None, f"is not UTF-8 text ({exc})", "save the card as UTF-8 JSON") from exc
    except json.JSONDecodeError as exc:
        raise _fail(text_path, None, f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                    "fix the JSON syntax") from exc
    card = _validate(raw, text_path, stem=p.stem)
    weights = p.parent / card["weights"]
    if not weights.is_file():
        what = "ONNX file" if is_onnx_card(card) else "state_dict file"
        raise _fail(text_path, "weights", f"weights file {str(weights)!r} does not exist",
                    f"put the {what} there or correct the path (relative to the card)")
    if is_onnx_card(card):
        return card
    err = _arch_error(card["arch"], card["source"], text_path)
    if err is not None:
        raise err
    return card


def _load_state_dict(weights: Path, card_path: str) -> dict[str, Any]:
    import torch

    try:
        obj = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle/zip/runtime errors for unreadable files
        raise _fail(card_path, "weights", f"cannot read {str(weights)!r} as a weights-only torch file ({exc})",
                    "save it with torch.save(model.state_dict(), path)") from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping) or not obj or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise _fail(card_path, "weights", f"{str(weights)!r} does not hold a state_dict (name → tensor)",
                    "save it with torch.save(model.state_dict(), path)")
    if all(k.startswith("module.") for k in obj):  # saved from DataParallel / DDP
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def __getattr__(name: str) -> Any:
    # The device-bound classifier lives with TorchClassifier (torch is imported only when a card loads).
    if name == "_DeviceTorchClassifier":
        from veil.classify.torch import DeviceTorchClassifier

        return DeviceTorchClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_model_card(
    path: str | os.PathLike[str], *, threshold: float | None = None, device: Any = None, scoring: str | None = None
) -> TorchClassifier:
    """Build the :class:`TorchClassifier` a model card describes.

    Parameters
    ----------
    path : str or Path
        The card (JSON). Its ``weights`` path is resolved relative to the card's folder.
    threshold : float, optional
        Overrides the card's ``threshold``.
    device : str or torch.device, optional
        Where the module runs (default CPU). Its convolution weights are kept channels-last,
        the layout the CPU's fastest kernels use (``bench/classify_layout.py``).
    scoring : {"auto", "onnxruntime", "torch"}, optional
        On the CPU, where scores come from (default: the ``VEIL_SCORING`` environment variable, else
        ``"auto"``, so the switch reaches every command and batch worker): ``"auto"`` exports the module to ONNX (cached, see
        :meth:`~veil.classify.torch.TorchClassifier.score_with_onnxruntime`) and scores with onnxruntime
        when the graph runs and agrees with the module, else with the module (a warning says why);
        ``"onnxruntime"`` raises instead; ``"torch"`` always uses the module. Gradients always use it.

    Returns
    -------
    TorchClassifier
        With ``config`` holding the validated card (plus ``card_path``).

    Raises
    ------
    ModelLoadError
        Malformed card, missing or unreadable weights, unknown architecture, or a
        ``state_dict`` that does not fit the architecture.

    Examples
    --------
    >>> clf = load_model_card("models/nsfw_resnet50.json")  # doctest: +SKIP
    >>> clf.predict_proba([image]).shape  # doctest: +SKIP
    (1, 2)
    """
    import torch

    from veil.classify.arch import build_model
    from veil.classify.torch import SCORINGS, DeviceTorchClassifier, TorchClassifier

    if scoring is None:  # every shell (CLI, service, batch workers) reads the same switch from the environment
        scoring = os.environ.get("VEIL_SCORING", "").strip().lower() or "auto"
        if scoring not in SCORINGS:
            raise InvalidParameterError(f"VEIL_SCORING must be one of {list(SCORINGS)}, got {scoring!r}")
    if scoring not in SCORINGS:
        raise InvalidParameterError(f"scoring must be one of {list(SCORINGS)}, got {scoring!r}")
    card = read_model_card(path)
    card_path = str(Path(path))
    if is_onnx_card(card):
        raise _fail(card_path, "format", "is an ONNX card, which does not load into a TorchClassifier",
                    "load it with veil.classify.load_classifier(path) or veil.classify.onnx.load_onnx_card(path)")
    if threshold is not None:
        if not _is_number(threshold) or not 0.0 < threshold < 1.0:
            raise InvalidParameterError(f"threshold must lie in (0, 1), got {threshold!r}")
        card["threshold"] = float(threshold)
    try:
        dev = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidParameterError(f"device {device!r} is not a torch device; use e.g. 'cpu' or 'cuda:0'") from exc

    try:
        model = build_model(card["arch"], len(card["labels"]), source=card["source"])
    except ModelLoadError as exc:
        raise _fail(card_path, "arch", str(exc), "") from exc
    state = _load_state_dict(Path(path).parent / card["weights"], card_path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}"
        for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        raise _fail(
            card_path, "weights",
            f"state_dict does not fit arch {card['arch']!r} with {len(card['labels'])} labels: "
            f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys "
            f"{unexpected[:5]}, {len(mismatched)} shape mismatches (checkpoint vs model) {mismatched[:5]}",
            "check that \"arch\" (and \"source\") name the architecture the weights were trained "
            "with and that \"labels\" has one entry per output",
        )
    model.load_state_dict(state)
    # Convolution weights in channels-last order: oneDNN's faster CPU kernels (a ResNet-18 at 128 px
    # classifies 1.2-1.3x faster; depthwise networks gain little), the same outputs to float rounding.
    model.to(memory_format=torch.channels_last)
    config = dict(card, card_path=card_path)
    kwargs: dict[str, Any] = dict(
        input_size=card["input_size"],
        mean=card["mean"],
        std=card["std"],
        threshold=card["threshold"],
        name=card["name"],
        config=config,
    )
    if dev.type == "cpu":
        clf = TorchClassifier(model, card["labels"], card["unsafe_labels"], **kwargs)
        if scoring != "torch":
            try:
                clf.score_with_onnxruntime()
            except ModelLoadError as exc:
                if scoring == "onnxruntime":
                    raise _fail(card_path, "weights", str(exc), "load it with scoring='torch'") from exc
                warnings.warn(f"{card_path}: scoring with torch: {exc}", RuntimeWarning, stacklevel=2)
        return clf
    return DeviceTorchClassifier(model, card["labels"], card["unsafe_labels"], device=dev, **kwargs)


def validate_model_card(card: Mapping[str, Any], path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check ``card`` as :func:`load_model_card` would (keys and types; files are not checked).

    Returns the card with optional keys filled in; raises :class:`veil.errors.ModelLoadError`
    naming ``path``, the key and the fix.
    """
    p = Path(path)
    return _validate(card, str(p), stem=p.stem)


def write_model_card(path: str | os.PathLike[str], card: Mapping[str, Any]) -> Path:
    """Validate ``card`` (keys and types; files are not checked) and write it as JSON.

    Examples
    --------
    >>> write_model_card("model.json", {"arch": "resnet18", "weights": "model.pt",
    ...     "labels": ["safe", "unsafe"], "unsafe_labels": ["unsafe"], "input_size": 224,
    ...     "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})  # doctest: +SKIP
    PosixPath('model.json')
    """
    p = Path(path)
    _validate(card, str(p), stem=p.stem)
    try:
        text = json.dumps(dict(card), indent=2, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise _fail(str(p), None, f"is not JSON-serialisable ({exc})",
                    "use only strings, numbers, lists and objects") from exc
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text + "\n", encoding="utf-8")
    return p


__all__ = ["OPTIONAL_KEYS", "REQUIRED_KEYS", "is_onnx_card", "is_onnx_card_file", "load_model_card", "read_model_card", "validate_model_card",
           "write_model_card"]
