"""ONNX classifiers by model card: onnxruntime for scores, onnx2torch for gradients.

A card with ``"format": "onnx"`` turns any image classifier exported to ONNX into a
Veil classifier. Besides ``labels``, ``unsafe_labels``, ``threshold``, ``categories``,
``name`` and ``description`` (as in every card, see :mod:`veil.classify.card`) it
says what the graph expects::

    {
      "format": "onnx",
      "weights": "model.onnx",
      "labels": ["sfw", "nsfw"],
      "unsafe_labels": ["nsfw"],
      "layout": "NHWC",
      "color_order": "BGR",
      "pixel_range": 255,
      "mean": [104, 117, 123],
      "std": [1, 1, 1],
      "resize": "resize_crop",
      "resize_size": 256,
      "input_size": 224,
      "output": "probabilities"
    }

======================  =====================================================================
key                     meaning
======================  =====================================================================
``weights``             the ``.onnx`` file, relative to the card
``layout``              ``"NCHW"`` (default) or ``"NHWC"``: the graph input's axis order
``color_order``         ``"RGB"`` (default) or ``"BGR"``: channel order the graph expects
``pixel_range``         pixels are scaled from 0–255 to 0–``pixel_range`` (default 1, i.e. /255)
``mean``, ``std``       per channel, in the graph's channel order and pixel units (default 0, 1):
                        ``x = (pixel · pixel_range / 255 − mean) / std``
``resize``              ``"squash"`` (default): resize to ``input_size``, aspect ratio ignored;
                        ``"resize_crop"``: resize to ``resize_size`` then centre-crop ``input_size``
``input_size``          side (or ``[height, width]``) of the graph input; default: the graph's
                        own static size
``resize_size``         side (or ``[height, width]``) before the centre crop (``resize_crop`` only)
``output``              ``"logits"`` (softmax is applied) or ``"probabilities"`` (required)
``input_name``,         the graph's image input (it must have exactly one) and the output
``output_name``         to read (default: the first)
``target_layers``       module names of the converted torch graph for the Grad-CAM family
                        (default: the last module with a spatial feature map)
======================  =====================================================================

Resizing is PIL's bilinear filter on the ``uint8`` image, as most reference pipelines
(Caffe and TensorFlow ports, torchvision's PIL transforms) do. Scores come from
onnxruntime; gradient-based attribution (FullGrad, the Grad-CAM family) runs the same
graph converted to torch by ``onnx2torch``, built on first use. A graph with operators
onnx2torch cannot convert loads as a plain :class:`OnnxClassifier` (not a
:class:`~veil.classify.base.GradientClassifier`), so the pipeline falls back to occlusion
and records that in ``settings.attribution_used``.

With ``resize_crop`` the network never sees the border outside the centre crop:
:meth:`OnnxGradientClassifier.attribution_to_image` gives those pixels zero attribution,
so they rank last in the counterfactual search (obfuscating them cannot change the score).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from veil.errors import InvalidParameterError, ModelLoadError
from veil.image import as_rgb_uint8, resize

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: ONNX-specific card keys and their defaults (``input_size`` None: read from the graph).
ONNX_KEYS: dict[str, Any] = {
    "layout": "NCHW",
    "color_order": "RGB",
    "pixel_range": 1.0,
    "mean": [0.0, 0.0, 0.0],
    "std": [1.0, 1.0, 1.0],
    "resize": "squash",
    "input_size": None,
    "resize_size": None,
    "input_name": None,
    "output_name": None,
    "target_layers": None,
}
#: Keys an ONNX card must have.
ONNX_REQUIRED_KEYS: tuple[str, ...] = ("format", "weights", "labels", "unsafe_labels", "output")

_ONNX_FIXES = {
    "weights": 'the path of the .onnx file, relative to the card, e.g. "model.onnx"',
    "labels": 'the class names in the graph\'s output order, e.g. ["safe", "unsafe"]',
    "unsafe_labels": 'the labels whose summed probability is the unsafe score, e.g. ["unsafe"]',
    "output": '"logits" when softmax still has to be applied, "probabilities" when the graph ends in it',
    "layout": '"NCHW" (channels first, PyTorch exports) or "NHWC" (channels last, TensorFlow / Caffe ports)',
    "color_order": '"RGB" or "BGR"',
    "pixel_range": "the value pixel 255 maps to: 1 for [0, 1] input, 255 for raw 0–255 pixels",
    "mean": "three numbers in the graph's channel order and pixel units, e.g. [0.485, 0.456, 0.406]",
    "std": "three positive numbers in the graph's channel order and pixel units, e.g. [0.229, 0.224, 0.225]",
    "resize": '"squash" (resize to input_size) or "resize_crop" (resize to resize_size, centre-crop input_size)',
    "input_size": "the graph input's side in pixels, e.g. 224, or [height, width]",
    "resize_size": "the side before the centre crop, e.g. 256, or [height, width]",
    "input_name": "the name of a graph input",
    "output_name": "the name of a graph output",
    "target_layers": "a list of module names of the onnx2torch-converted graph",
}


def _fail(path: str, key: str | None, problem: str, fix: str | None = None) -> ModelLoadError:
    from veil.classify.card import _fail as card_fail

    return card_fail(path, key, problem, _ONNX_FIXES.get(key or "", "") if fix is None else fix)


def _size(value: Any, path: str, key: str) -> tuple[int, int]:
    """``224`` or ``[h, w]`` → ``(h, w)``, each at least 8."""
    pair = [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
    if (not isinstance(pair, list | tuple) or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 8 for v in pair)):
        raise _fail(path, key, f"must be an integer of at least 8 or a [height, width] pair, got {value!r}")
    return int(pair[0]), int(pair[1])


def validate_onnx_card(card: Mapping[str, Any], path: str, *, stem: str) -> dict[str, Any]:
    """Check an ONNX card's keys and types (not the file); return it with defaults filled in.

    Raises
    ------
    ModelLoadError
        Naming the card, the key and the fix.
    """
    from veil.classify.card import _is_number, _validate_common

    missing = [k for k in ONNX_REQUIRED_KEYS if k not in card]
    if missing:
        raise _fail(path, missing[0], f"missing required key(s) {missing}",
                    "; ".join(f"{k}: {_ONNX_FIXES.get(k, 'onnx')}" for k in missing))
    out = dict(card)
    if not isinstance(out["weights"], str) or not out["weights"].strip():
        raise _fail(path, "weights", f"must be a non-empty string, got {out['weights']!r}")
    for key, default in ONNX_KEYS.items():
        out.setdefault(key, default)
    choices = {"layout": ("NCHW", "NHWC"), "color_order": ("RGB", "BGR"), "resize": ("squash", "resize_crop"),
               "output": ("logits", "probabilities")}
    for key, allowed in choices.items():
        if out[key] not in allowed:
            raise _fail(path, key, f"must be one of {list(allowed)}, got {out[key]!r}")
    if not _is_number(out["pixel_range"]) or out["pixel_range"] <= 0:
        raise _fail(path, "pixel_range", f"must be a positive number, got {out['pixel_range']!r}")
    for key in ("mean", "std"):
        value = out[key]
        if not isinstance(value, list) or len(value) != 3 or not all(_is_number(v) for v in value):
            raise _fail(path, key, f"must be a list of 3 numbers, got {value!r}")
    if any(v <= 0 for v in out["std"]):
        raise _fail(path, "std", f"values must be positive, got {out['std']!r}")
    if out["input_size"] is not None:
        _size(out["input_size"], path, "input_size")
    if out["resize"] == "resize_crop":
        if out["resize_size"] is None:
            raise _fail(path, "resize_size", 'is required with "resize": "resize_crop"')
        if out["input_size"] is None:
            raise _fail(path, "input_size", 'is required with "resize": "resize_crop" (the crop size)')
        rh, rw = _size(out["resize_size"], path, "resize_size")
        ch, cw = _size(out["input_size"], path, "input_size")
        if ch > rh or cw > rw:
            raise _fail(path, "input_size", f"crop {[ch, cw]} is larger than resize_size {[rh, rw]}",
                        "the centre crop must fit inside the resized image")
    elif out["resize_size"] is not None:
        raise _fail(path, "resize_size", 'only applies with "resize": "resize_crop"',
                    'remove it, or set "resize": "resize_crop"')
    for key in ("input_name", "output_name"):
        if out[key] is not None and (not isinstance(out[key], str) or not out[key]):
            raise _fail(path, key, f"must be a non-empty string, got {out[key]!r}")
    tl = out["target_layers"]
    if tl is not None and (not isinstance(tl, list) or not tl or not all(isinstance(t, str) and t for t in tl)):
        raise _fail(path, "target_layers", f"must be a non-empty list of module names, got {tl!r}")
    return _validate_common(out, path, stem=stem)


# -- shared ONNX plumbing (also used by veil.classify.nudenet) ---------------------------------
def session_options() -> Any:
    """onnxruntime session options sized like this process's torch pool.

    When ``OMP_NUM_THREADS`` is set (the batch engines set it to each worker's thread budget,
    ``veil scan --threads``), onnxruntime gets that many intra-op threads and one inter-op
    thread; otherwise its own default (one per physical core). Without this, each worker of a
    pool of single-thread workers would run an onnxruntime pool as wide as the machine.
    """
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    threads = os.environ.get("OMP_NUM_THREADS", "").strip()
    if threads.isdigit() and int(threads) > 0:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    return opts


def open_session(path: Path, what: str) -> Any:
    """An onnxruntime CPU session for ``path``, or a :class:`ModelLoadError` naming ``what``."""
    import onnxruntime

    try:
        return onnxruntime.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ModelLoadError(f"{what} {str(path)!r} could not be loaded by onnxruntime ({exc})") from exc


def convert_to_torch(path: Path) -> Any:
    """The ``onnx2torch`` conversion of an ONNX file (an eval-mode ``torch.fx.GraphModule``)."""
    import onnx
    from onnx2torch import convert

    try:
        return convert(onnx.load(str(path))).eval()
    except Exception as exc:  # onnx2torch raises bare NotImplementedError/KeyError for unknown ops
        raise ModelLoadError(
            f"onnx2torch could not convert {str(path)!r} ({exc!r}); gradient-based attribution "
            "needs an ONNX graph made of ops onnx2torch supports (use attribution 'occlusion')"
        ) from exc


def unconvertible_ops(path: Path) -> list[str]:
    """Operator types of the graph that ``onnx2torch`` has no converter for (empty: it converts).

    Reads the graph (not the weights' values) and checks each node against onnx2torch's
    registry at the graph's opset, without converting anything.
    """
    import onnx
    import onnx2torch  # noqa: F401 - registers the converters
    from onnx2torch.node_converters.registry import get_converter

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others for files that are not ONNX
        raise ModelLoadError(f"{str(path)!r} is not a readable ONNX file ({exc})") from exc
    opsets = {imp.domain or "": imp.version for imp in model.opset_import}
    missing = set()
    for node in model.graph.node:
        domain = node.domain or ""
        try:
            get_converter(node.op_type, opsets.get(domain, 1), domain)
        except NotImplementedError:
            missing.add(f"{domain}.{node.op_type}" if domain else node.op_type)
    return sorted(missing)


def graph_module_returning(module: Any, node: Any) -> Any:
    """A ``GraphModule`` sharing ``module``'s layers whose output is ``node`` (dead code dropped)."""
    import torch.fx

    new_graph = torch.fx.Graph()
    val_map: dict[torch.fx.Node, torch.fx.Node] = {}
    new_graph.graph_copy(module.graph, val_map)
    new_graph.output(val_map[node])
    out = torch.fx.GraphModule(module, new_graph)
    out.graph.eliminate_dead_code()
    out.recompile()
    return out.eval()


def _softmax_logits_module(module: Any) -> Any:
    """A GraphModule returning the input of the graph's final softmax, or None if it has none."""
    import torch
    import torch.fx

    graph = getattr(module, "graph", None)
    out_node = next((n for n in graph.nodes if n.op == "output"), None) if graph is not None else None
    if out_node is None:
        return None
    last = out_node.args[0]
    if isinstance(last, (tuple, list)):
        last = last[0]
    if not (isinstance(last, torch.fx.Node) and last.args and isinstance(last.args[0], torch.fx.Node)):
        return None
    is_softmax = False
    if last.op == "call_module":
        sub = module.get_submodule(str(last.target))
        is_softmax = isinstance(sub, torch.nn.Softmax) or "softmax" in type(sub).__name__.lower()
    elif last.op in ("call_function", "call_method"):
        is_softmax = "softmax" in str(getattr(last.target, "__name__", last.target)).lower()
    if not is_softmax:
        return None
    return graph_module_returning(module, last.args[0])


# -- the classifier ----------------------------------------------------------------------------
class OnnxClassifier:
    """An ONNX image classifier described by a card; scores through onnxruntime.

    ``predict_proba`` gives the class probabilities ``(N, len(labels))``; the unsafe
    score is the summed probability of ``unsafe_labels``. Build one with
    :func:`load_onnx_card` (or :func:`onnx_classifier` for a card given as a dict).

    Examples
    --------
    >>> clf = load_classifier("opennsfw")  # doctest: +SKIP
    >>> clf.predict_proba([image])  # doctest: +SKIP
    array([[0.98, 0.02]], dtype=float32)
    """

    def __init__(self, card: Mapping[str, Any], onnx_path: Path, *, batch_size: int = 16) -> None:
        self.config: dict[str, Any] = dict(card)
        self.onnx_path = Path(onnx_path)
        self.name = str(card["name"])
        self.labels = tuple(str(x) for x in card["labels"])
        self.unsafe_labels = tuple(str(x) for x in card["unsafe_labels"])
        self.threshold = float(card["threshold"])
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InvalidParameterError(f"batch_size must be an integer of at least 1, got {batch_size!r}")
        self.batch_size = batch_size
        self.layout = str(card["layout"])
        self.bgr = card["color_order"] == "BGR"
        self.scale = float(card["pixel_range"]) / 255.0
        self.mean = np.asarray(card["mean"], np.float32)
        self.std = np.asarray(card["std"], np.float32)
        self.logits = card["output"] == "logits"
        self._unsafe_idx = np.array([self.labels.index(u) for u in self.unsafe_labels], dtype=np.int64)
        where = f"model card {str(card.get('card_path', self.name))!r}"
        self._session = open_session(self.onnx_path, f"{where}: weights")
        self._input_name, self._output_name, graph_size, static_batch = self._check_graph(where)
        size = _size(card["input_size"], where, "input_size") if card["input_size"] is not None else graph_size
        if size is None:
            raise _fail(where, "input_size", "is not set and the graph's input has no static height and width")
        if graph_size is not None and graph_size != size:
            raise _fail(where, "input_size", f"is {list(size)} but the graph's input "
                        f"{self._input_name!r} takes {list(graph_size)} (as {self.layout})",
                        f"set \"input_size\": {list(graph_size)}, or check \"layout\"")
        self.input_size: tuple[int, int] = size
        if static_batch is not None:
            self.batch_size = min(self.batch_size, static_batch)
        self.crop: tuple[int, int, int, int] | None = None  # (top, left) offsets in the resized image + its size
        if card["resize"] == "resize_crop":
            rh, rw = _size(card["resize_size"], where, "resize_size")
            ch, cw = self.input_size
            self.crop = ((rh - ch) // 2, (rw - cw) // 2, rh, rw)
        self.config.update(backend="onnx", model_path=str(self.onnx_path), input_size=list(self.input_size))

    # -- loading ------------------------------------------------------------------------------
    def _check_graph(self, where: str) -> tuple[str, str, tuple[int, int] | None, int | None]:
        """Pick the input/output; check them against the card. Returns names, static (h, w), static batch."""
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        want_in, want_out = self.config.get("input_name"), self.config.get("output_name")
        names_in, names_out = [i.name for i in inputs], [o.name for o in outputs]
        if want_in is not None and want_in not in names_in:
            raise _fail(where, "input_name", f"{want_in!r} is not an input of the graph (inputs: {names_in})")
        if want_out is not None and want_out not in names_out:
            raise _fail(where, "output_name", f"{want_out!r} is not an output of the graph (outputs: {names_out})")
        if len(inputs) != 1:
            raise _fail(where, "weights", f"the graph has {len(inputs)} inputs {names_in}",
                        "export the classifier with a single image input")
        inp = next(i for i in inputs if i.name == (want_in or names_in[0]))
        out = next(o for o in outputs if o.name == (want_out or names_out[0]))
        self._output_index = names_out.index(out.name)
        shape = list(inp.shape)
        if len(shape) != 4:
            raise _fail(where, "layout", f"the graph's input {inp.name!r} has shape {shape}, not 4-D",
                        "Veil feeds an image batch (N, C, H, W) or (N, H, W, C)")
        c_axis, hw = (1, (2, 3)) if self.layout == "NCHW" else (3, (1, 2))
        channels = shape[c_axis]
        if isinstance(channels, int) and channels != 3:
            other = "NHWC" if self.layout == "NCHW" else "NCHW"
            raise _fail(where, "layout", f"is {self.layout!r} but the graph's input {inp.name!r} has shape "
                        f"{shape}: {channels} channels on the {self.layout} channel axis",
                        f"set \"layout\": \"{other}\" if that is the graph's layout (3 colour channels expected)")
        h, w = shape[hw[0]], shape[hw[1]]
        graph_size = (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None
        if "float" not in str(inp.type):
            raise _fail(where, "weights", f"the graph's input {inp.name!r} is {inp.type}, not a float tensor",
                        "export the graph with a float32 image input")
        oshape = list(out.shape)
        if len(oshape) != 2:
            raise _fail(where, "output_name", f"the graph's output {out.name!r} has shape {oshape}, not (N, classes)")
        width = oshape[1]
        if isinstance(width, int) and width != len(self.labels):
            raise _fail(where, "labels", f"has {len(self.labels)} entries {list(self.labels)} but the graph's "
                        f"output {out.name!r} has {width} classes", f"list {width} labels in output order")
        batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        return inp.name, out.name, graph_size, batch

    # -- preprocessing ------------------------------------------------------------------------
    def _pixels(self, image: np.ndarray) -> np.ndarray:
        """Resize (and crop) one image to the input size: H×W×3 ``uint8`` RGB."""
        from PIL import Image

        arr = as_rgb_uint8(image)
        if self.crop is not None:
            top, left, rh, rw = self.crop
            ch, cw = self.input_size
            if arr.shape[:2] != (rh, rw):
                arr = np.asarray(Image.fromarray(arr).resize((rw, rh), Image.Resampling.BILINEAR))
            return arr[top : top + ch, left : left + cw]
        h, w = self.input_size
        if arr.shape[:2] != (h, w):
            arr = np.asarray(Image.fromarray(arr).resize((w, h), Image.Resampling.BILINEAR))
        return arr

    def preprocess_hwc(self, image: np.ndarray) -> np.ndarray:
        """One image as the graph's channels-last input ``(h, w, 3)`` float32 (colour order, scale, mean, std)."""
        x = self._pixels(image).astype(np.float32)
        if self.scale != 1.0:
            x = x * np.float32(self.scale)
        if self.bgr:
            x = x[:, :, ::-1]
        x = x - self.mean
        if np.any(self.std != 1.0):
            x = x / self.std
        return np.ascontiguousarray(x, dtype=np.float32)

    def preprocess(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """A batch as the graph's input: ``(N, 3, h, w)`` or ``(N, h, w, 3)`` float32 per ``layout``."""
        if not images:
            h, w = self.input_size
            return np.zeros((0, 3, h, w) if self.layout == "NCHW" else (0, h, w, 3), np.float32)
        x = np.stack([self.preprocess_hwc(img) for img in images])
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if self.layout == "NCHW" else x

    # -- Classifier ---------------------------------------------------------------------------
    def _to_proba(self, out: np.ndarray) -> np.ndarray:
        out = np.asarray(out, np.float64)
        if out.ndim != 2 or out.shape[1] != len(self.labels):
            raise ModelLoadError(
                f"{self.name}: the graph's output {self._output_name!r} has shape {out.shape}, expected "
                f"(N, {len(self.labels)}) for labels {list(self.labels)}; fix \"labels\" in the card"
            )
        if self.logits:
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        return out.astype(np.float32)

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities ``(N, len(labels))`` through onnxruntime."""
        chunks = []
        for i in range(0, len(images), self.batch_size):
            x = self.preprocess(images[i : i + self.batch_size])
            out = self._session.run([self._output_name], {self._input_name: x})[0]
            chunks.append(self._to_proba(out))
        if not chunks:
            return np.zeros((0, len(self.labels)), np.float32)
        return np.concatenate(chunks, 0)

    def unsafe_score(self, proba: np.ndarray) -> np.ndarray:
        """Summed probability of ``unsafe_labels``, shape ``(N,)``."""
        p = np.asarray(proba)
        if p.ndim != 2 or p.shape[1] != len(self.labels):
            raise InvalidParameterError(
                f"proba (shape {p.shape}) must be (N, {len(self.labels)}) as returned by predict_proba"
            )
        return p[:, self._unsafe_idx].sum(axis=1)


class OnnxGradientClassifier(OnnxClassifier):
    """An :class:`OnnxClassifier` whose graph onnx2torch converts: also a ``GradientClassifier``.

    The torch path takes ``(N, 3, h, w)`` input whatever the graph's layout (an NHWC graph
    is fed through a permute), so FullGrad and the Grad-CAM family see channels first.
    """

    def __init__(self, card: Mapping[str, Any], onnx_path: Path, *, batch_size: int = 16) -> None:
        super().__init__(card, onnx_path, batch_size=batch_size)
        self._torch: Any = None
        self._logits: Any = None

    def _build_torch(self) -> None:
        graph = convert_to_torch(self.onnx_path)
        tap = not self.logits and self._output_index == 0
        logits = _softmax_logits_module(graph) if tap else None
        nhwc = self.layout == "NHWC"
        self._torch = channels_first(graph, nhwc=nhwc, output=self._output_index)
        self._logits = None if logits is None else channels_first(logits, nhwc=nhwc)
        # Attribution needs gradients with respect to the input only.
        for p in self._torch.parameters():
            p.requires_grad_(False)

    def torch_module(self) -> torch.nn.Module:
        """The converted graph behind a channels-first adapter: ``module(x)`` equals onnxruntime's output."""
        if self._torch is None:
            self._build_torch()
        return self._torch  # type: ignore[no-any-return]

    def torch_input(self, image: np.ndarray) -> torch.Tensor:
        """The preprocessed image ``(1, 3, h, w)`` float32 (channels first, whatever the layout)."""
        import torch

        return torch.from_numpy(self.preprocess_hwc(image).transpose(2, 0, 1)[None].copy())

    def torch_unsafe_score(self, x: torch.Tensor) -> torch.Tensor:
        """Log-odds of the unsafe probability, shape ``(N,)``.

        From the pre-softmax logits when the graph outputs logits or ends in a softmax that
        can be tapped (no saturation); else from the probabilities, clamped to stay finite.
        """
        import torch

        module = self.torch_module()
        idx = torch.as_tensor(self._unsafe_idx)
        if self.logits or self._logits is not None:
            z = (module if self.logits else self._logits)(x).float()
            logp = torch.log_softmax(z, dim=1)
        else:
            logp = torch.log(module(x).float().clamp_min(1e-12))
        log_unsafe = torch.logsumexp(logp[:, idx], dim=1)
        safe = torch.ones(logp.shape[1], dtype=torch.bool)
        safe[idx] = False
        if not bool(safe.any()):
            return log_unsafe
        return log_unsafe - torch.logsumexp(logp[:, safe], dim=1)

    def cam_target_layers(self) -> list[torch.nn.Module]:
        """Card ``target_layers`` if given, else the output of the last convolution stage.

        That is the last module, in execution order, whose output has the shape of the last
        ``Conv2d``'s output: for a ResNet the last residual block's activation (7×7 at 224 px),
        the layer Grad-CAM reads on torchvision ResNets (``layer4[-1]``).
        """
        graph = self._graph()
        named = dict(graph.named_modules())
        names = self.config.get("target_layers")
        if names:
            missing = [n for n in names if n not in named]
            if missing:
                raise InvalidParameterError(
                    f"target_layers {missing} are not modules of the converted graph of {self.name!r}; "
                    f"use names such as {self._last_stage_modules()[-4:]}"
                )
            return [named[n] for n in names]
        stage = self._last_stage_modules()
        if not stage:
            raise InvalidParameterError(
                f"the converted graph of {self.name!r} has no Conv2d; set \"target_layers\" in the "
                "card or use attribution 'fullgrad' / 'occlusion'"
            )
        return [named[stage[-1]]]

    def _graph(self) -> Any:
        """The converted ``torch.fx.GraphModule`` inside the channels-first adapter."""
        return self.torch_module().graph_module

    def _last_stage_modules(self) -> list[str]:
        """The last ``Conv2d`` and the modules after it with the same output shape, in execution order."""
        import torch

        module = self.torch_module()
        graph = self._graph()
        order = [str(n.target) for n in graph.graph.nodes if n.op == "call_module"]
        shapes: dict[str, tuple[int, ...]] = {}
        hooks = []
        for name in dict.fromkeys(order):
            def hook(_m: Any, _i: Any, out: Any, name: str = name) -> None:
                if isinstance(out, torch.Tensor):
                    shapes[name] = tuple(out.shape)

            hooks.append(graph.get_submodule(name).register_forward_hook(hook))
        try:
            with torch.no_grad():
                module(torch.zeros(1, 3, *self.input_size))
        finally:
            for h in hooks:
                h.remove()
        convs = [i for i, n in enumerate(order) if isinstance(graph.get_submodule(n), torch.nn.Conv2d)]
        if not convs:
            return []
        shape = shapes.get(order[convs[-1]])
        return list(dict.fromkeys(n for n in order[convs[-1]:] if shapes.get(n) == shape))

    def attribution_to_image(self, attribution: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
        """Map an ``(h, w)`` map over the network input onto the ``(H, W)`` image.

        ``squash``: resized (bilinear). ``resize_crop``: the map covers only the centre crop's
        window of the image; pixels outside it were never seen by the network and get 0.
        """
        att = np.asarray(attribution, dtype=np.float32)
        if att.ndim != 2:
            raise InvalidParameterError(f"attribution (shape {att.shape}) must be a 2-D map")
        height, width = int(image_shape[0]), int(image_shape[1])
        if height < 1 or width < 1:
            raise InvalidParameterError(f"image_shape {tuple(image_shape)} must be positive")
        if self.crop is None:
            return resize(att, (height, width)).astype(np.float32)
        y0, x0, y1, x1 = crop_box(self.crop, self.input_size, (height, width))
        out = np.zeros((height, width), np.float32)
        out[y0:y1, x0:x1] = resize(att, (y1 - y0, x1 - x0))
        return out


def crop_box(crop: tuple[int, int, int, int], input_size: tuple[int, int],
             image_shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(y0, x0, y1, x1)``: the window of an ``image_shape`` image that a centre crop sees.

    ``crop`` is ``(top, left, resized_h, resized_w)``; bounds are rounded outwards so that
    every pixel that contributes to the crop is inside, and the window is at least one pixel.

    Examples
    --------
    >>> crop_box((16, 16, 256, 256), (224, 224), (512, 1024))
    (32, 64, 480, 960)
    """
    top, left, rh, rw = crop
    ch, cw = input_size
    height, width = image_shape
    y0 = max(0, math.floor(top * height / rh))
    x0 = max(0, math.floor(left * width / rw))
    y1 = min(height, max(y0 + 1, math.ceil((top + ch) * height / rh)))
    x1 = min(width, max(x0 + 1, math.ceil((left + cw) * width / rw)))
    return y0, x0, y1, x1


def channels_first(graph_module: Any, *, nhwc: bool, output: int = 0) -> Any:
    """Wrap a graph so that it takes ``(N, 3, h, w)``: a permute in front of a channels-last graph.

    The wrapper's ``graph_module`` attribute is the graph; of several outputs, ``output`` is returned.
    Defined inside so that importing this module does not import torch.
    """
    import torch

    class ChannelsFirst(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.graph_module = graph_module
            self.nhwc = nhwc

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.graph_module(x.permute(0, 2, 3, 1) if self.nhwc else x)
            return out[output] if isinstance(out, (tuple, list)) else out

    return ChannelsFirst().eval()


def onnx_classifier(
    card: Mapping[str, Any],
    *,
    base_dir: str | os.PathLike[str] | None = None,
    card_path: str | None = None,
    threshold: float | None = None,
    gradients: bool | None = None,
    batch_size: int = 16,
) -> OnnxClassifier:
    """Build the classifier an ONNX card (a dict) describes; ``weights`` is resolved against ``base_dir``.

    Parameters
    ----------
    card : mapping
        The card's keys (see the module docstring); validated here.
    base_dir : path, optional
        Folder ``weights`` is relative to (default: the current directory; absolute paths stay).
    card_path : str, optional
        Where the card came from, for error messages and ``config["card_path"]``.
    threshold : float, optional
        Overrides the card's ``threshold``.
    gradients : bool, optional
        None (default): an :class:`OnnxGradientClassifier` when onnx2torch supports every
        operator of the graph, else a plain :class:`OnnxClassifier`. True: require gradients
        (error if unsupported). False: never build the torch path.
    batch_size : int
        Images per onnxruntime call.
    """
    from veil.classify.card import _is_number

    where = card_path or str(card.get("name") or "<dict>")
    stem = Path(card_path).stem if card_path else str(card.get("name") or "onnx")
    full = validate_onnx_card(card, where, stem=stem)
    if threshold is not None:
        if not _is_number(threshold) or not 0.0 < threshold < 1.0:
            raise InvalidParameterError(f"threshold must lie in (0, 1), got {threshold!r}")
        full["threshold"] = float(threshold)
    weights = Path(full["weights"])
    if not weights.is_absolute():
        weights = Path(base_dir or ".") / weights
    if not weights.is_file():
        raise _fail(where, "weights", f"ONNX file {str(weights)!r} does not exist",
                    "put the .onnx file there or correct the path (relative to the card)")
    if card_path:
        full["card_path"] = card_path
    if gradients is False:
        full["gradients"] = False
        return OnnxClassifier(full, weights, batch_size=batch_size)
    missing = unconvertible_ops(weights)
    if missing:
        if gradients:
            raise _fail(where, "weights", f"onnx2torch cannot convert the operators {missing}",
                        "use a gradient-free attribution ('occlusion') or pass gradients=None")
        full["gradients"] = False
        full["gradients_unavailable"] = (f"onnx2torch cannot convert {missing}; gradient attribution "
                                         "falls back to occlusion")
        return OnnxClassifier(full, weights, batch_size=batch_size)
    full["gradients"] = True
    return OnnxGradientClassifier(full, weights, batch_size=batch_size)


def load_onnx_card(path: str | os.PathLike[str], *, threshold: float | None = None,
                   gradients: bool | None = None, batch_size: int = 16) -> OnnxClassifier:
    """Load an ONNX model card file (``"format": "onnx"``) into a classifier.

    Raises
    ------
    ModelLoadError
        A malformed card, a missing ``.onnx`` file, a graph input that contradicts ``layout`` /
        ``input_size``, or labels that do not match the output width.

    Examples
    --------
    >>> clf = load_onnx_card("models/nsfw.json")  # doctest: +SKIP
    """
    from veil.classify.card import is_onnx_card, read_model_card

    card = read_model_card(path)
    if not is_onnx_card(card):
        raise _fail(str(path), "format", f"is {card.get('format', 'torch')!r}, not \"onnx\"",
                    "load torch cards with veil.classify.load_model_card")
    return onnx_classifier(card, base_dir=Path(path).parent, card_path=str(Path(path)), threshold=threshold,
                           gradients=gradients, batch_size=batch_size)


__all__ = [
    "ONNX_KEYS",
    "ONNX_REQUIRED_KEYS",
    "OnnxClassifier",
    "OnnxGradientClassifier",
    "convert_to_torch",
    "crop_box",
    "load_onnx_card",
    "onnx_classifier",
    "unconvertible_ops",
    "validate_onnx_card",
]
