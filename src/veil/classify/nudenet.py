"""NudeNet's YOLOv8 detector (``320n.onnx``) as a Veil classifier, detector and gradient model.

Scores and boxes are computed through onnxruntime exactly as ``nudenet.NudeDetector``
computes them; the gradient path runs the same ONNX graph converted to torch with
``onnx2torch`` (built lazily, once per instance).

Preprocessing replicated from ``nudenet/nudenet.py`` (3.4):

* the image is padded with black on the **bottom and right** to a square of side
  ``max(H, W)`` (the image stays in the top-left corner),
* resized to ``input_size``² with ``cv2.dnn.blobFromImage`` (bilinear, on ``uint8``),
  scaled by 1/255, no mean subtraction,
* channels reach the network in **BGR** order: NudeNet reads BGR with OpenCV, its
  ``cvtColor(RGBA2BGR)`` swaps to RGB and ``blobFromImage(swapRB=True)`` swaps back.

Postprocessing: per anchor the best class score; anchors scoring at least the
detection threshold are kept, boxes are scaled by ``max(H, W) / input_size`` and
clipped to the image, then class-agnostic NMS (``cv2.dnn.NMSBoxes``, IoU 0.45).
NudeNet pre-filters at 0.2 but calls ``NMSBoxes`` with a score threshold of 0.25,
so its effective cut-off is 0.25, our default.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from veil.classify.base import Detection
from veil.errors import InvalidParameterError, ModelLoadError
from veil.image import as_rgb_uint8, resize, shrink
from veil.taxonomy import NUDENET_LABELS as _NUDENET_LABELS
from veil.taxonomy import NUDENET_SEXUAL

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: NudeNet's 18 labels in output order, and the exposed ones that make an image unsafe by
#: default: one table, :data:`veil.taxonomy.NUDENET_ATTRIBUTES` (with the readable names).
NUDENET_LABELS: tuple[str, ...] = _NUDENET_LABELS
DEFAULT_UNSAFE_LABELS: tuple[str, ...] = NUDENET_SEXUAL

#: Grad-CAM layers: the last conv block of the Detect head's classification branch at each
#: scale (P3 stride 8, P4 stride 16, P5 stride 32), in onnx2torch's naming. Only the scale
#: holding the winning anchor gets gradient, so averaging the three maps loses nothing;
#: neck outputs (``model/15|18|21/cv2/act/Mul``) also feed the other scales and localise worse.
DEFAULT_TARGET_LAYERS: tuple[str, ...] = (
    "model/22/cv3/0/cv3/0/1/act/Mul",
    "model/22/cv3/1/cv3/1/1/act/Mul",
    "model/22/cv3/2/cv3/2/1/act/Mul",
)


def bundled_model_path() -> Path:
    """Path of the ``320n.onnx`` file shipped inside the ``nudenet`` package.

    Examples
    --------
    >>> bundled_model_path().name
    '320n.onnx'
    """
    from veil.errors import require

    nudenet = require("nudenet", "nudenet")
    path = Path(os.path.dirname(nudenet.__file__)) / "320n.onnx"  # type: ignore[attr-defined]
    if not path.is_file():
        raise ModelLoadError(
            f"the nudenet package at {path.parent} has no 320n.onnx; reinstall it "
            "(`pip install --force-reinstall nudenet`) or pass onnx_path="
        )
    return path


@dataclass(frozen=True)
class Letterbox:
    """Geometry of NudeNet's letterbox: an ``height``×``width`` image padded to ``side``², resized to ``size``²."""

    height: int
    width: int
    size: int

    @property
    def side(self) -> int:
        return max(self.height, self.width)

    @property
    def scale(self) -> float:
        """Original pixels per network pixel."""
        return self.side / self.size


def letterbox(image: np.ndarray, size: int = 320) -> tuple[np.ndarray, Letterbox]:
    """NudeNet's preprocessing of one RGB image into a ``(3, size, size)`` float32 BGR array.

    Parameters
    ----------
    image : ndarray
        H×W×3 ``uint8`` RGB image (anything :func:`veil.image.as_rgb_uint8` accepts).
    size : int
        Side of the square network input.

    Returns
    -------
    blob : ndarray
        ``(3, size, size)`` float32 in [0, 1], channels B, G, R.
    geometry : Letterbox
        What :func:`decode_detections` and attribution mapping need to undo it.

    Examples
    --------
    >>> blob, geo = letterbox(np.zeros((10, 20, 3), np.uint8), 32)
    >>> blob.shape, geo.side
    ((3, 32, 32), 20)
    """
    import cv2

    arr = as_rgb_uint8(image)
    h, w = arr.shape[:2]
    # camera-sized input: average blocks first, so the square padding is never made full size
    factor = max(h, w) // (4 * int(size))
    if factor >= 2:
        arr = shrink(arr, factor)
    sh, sw = arr.shape[:2]
    side = max(sh, sw)
    padded = cv2.copyMakeBorder(arr, 0, side - sh, 0, side - sw, cv2.BORDER_CONSTANT, value=0)
    # The input is RGB; swapRB hands the network BGR, exactly like NudeNet on a file.
    blob = cv2.dnn.blobFromImage(padded, 1 / 255.0, (size, size), (0, 0, 0), swapRB=True, crop=False)
    return np.ascontiguousarray(blob[0], dtype=np.float32), Letterbox(h, w, int(size))


def decode_detections(
    output: np.ndarray,
    geometry: Letterbox,
    labels: Sequence[str],
    *,
    threshold: float = 0.25,
    iou_threshold: float = 0.45,
) -> list[Detection]:
    """Turn one raw YOLOv8 output ``(4 + K, anchors)`` into NMS-filtered detections.

    Boxes are ``(x, y, width, height)`` in original-image pixels, truncated to int
    and clipped to the image as NudeNet does; detections are sorted by score.

    Examples
    --------
    >>> out = np.zeros((6, 3), np.float32)
    >>> out[:4, 0] = [16, 16, 8, 8]; out[4, 0] = 0.75
    >>> decode_detections(out, Letterbox(64, 64, 32), ["a", "b"])
    [Detection(label='a', score=0.75, box=(24, 24, 16, 16))]
    """
    import cv2

    out = np.asarray(output, dtype=np.float32)
    if out.ndim != 2 or out.shape[0] != 4 + len(labels):
        raise InvalidParameterError(
            f"output (shape {out.shape}) must be (4 + {len(labels)}, anchors) for {len(labels)} labels"
        )
    cls = out[4:]
    scores = cls.max(axis=0)
    keep = np.flatnonzero(scores >= threshold)
    if keep.size == 0:
        return []
    class_ids = cls[:, keep].argmax(axis=0)
    cx, cy, bw, bh = out[0, keep], out[1, keep], out[2, keep], out[3, keep]
    # Same float32 operations, in the same order, as nudenet._postprocess.
    side, size = geometry.side, geometry.size
    x = (cx - bw / 2) * side / size
    y = (cy - bh / 2) * side / size
    bw = bw * side / size
    bh = bh * side / size
    x = np.clip(x, 0, geometry.width)
    y = np.clip(y, 0, geometry.height)
    bw = np.minimum(bw, geometry.width - x)
    bh = np.minimum(bh, geometry.height - y)
    boxes = np.stack([x, y, bw, bh], axis=1)
    kept_scores = scores[keep]
    indices = cv2.dnn.NMSBoxes(boxes.tolist(), kept_scores.tolist(), float(threshold), float(iou_threshold))
    detections = []
    for i in np.asarray(indices, dtype=np.int64).reshape(-1):
        bx = boxes[i]
        detections.append(
            Detection(
                label=str(labels[int(class_ids[i])]),
                score=float(kept_scores[i]),
                box=(int(bx[0]), int(bx[1]), int(bx[2]), int(bx[3])),
            )
        )
    return detections


class NudeNetClassifier:
    """NudeNet's body-part detector read as an 18-label classifier, a detector and a torch model.

    ``predict_proba`` gives, per label, the highest class score over all anchors;
    the image-level unsafe score is the maximum over ``unsafe_labels``.

    Parameters
    ----------
    onnx_path : str or Path, optional
        A YOLOv8-style NudeNet ONNX file (input ``(N, 3, h, w)``, output
        ``(N, 4 + len(labels), anchors)``). Default: the ``320n.onnx`` bundled with ``nudenet``.
    labels : sequence of str, optional
        Class names in output order; default :data:`NUDENET_LABELS`.
    unsafe_labels : sequence of str
        Labels that make an image unsafe; default :data:`DEFAULT_UNSAFE_LABELS`.
    threshold : float
        Decision threshold on the unsafe score, in (0, 1).
    detect_threshold : float
        Minimum class score of a detection (NudeNet's effective cut-off is 0.25).
    iou_threshold : float
        NMS overlap threshold.
    input_size : int
        Network input side, a multiple of 32 (NudeNet uses 320).
    batch_size : int
        Images per onnxruntime call in :meth:`predict_proba`.
    target_layers : sequence of str, optional
        Module names (in the converted torch graph) for Grad-CAM; default
        :data:`DEFAULT_TARGET_LAYERS`.
    name : str
        Classifier name.

    Examples
    --------
    >>> clf = NudeNetClassifier()
    >>> clf.predict_proba([np.zeros((64, 48, 3), np.uint8)]).shape
    (1, 18)
    """

    def __init__(
        self,
        *,
        onnx_path: str | os.PathLike[str] | None = None,
        labels: Sequence[str] | None = None,
        unsafe_labels: Sequence[str] = DEFAULT_UNSAFE_LABELS,
        threshold: float = 0.5,
        detect_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        input_size: int = 320,
        batch_size: int = 8,
        target_layers: Sequence[str] | None = None,
        name: str = "nudenet",
    ) -> None:
        self.labels = tuple(str(x) for x in (NUDENET_LABELS if labels is None else labels))
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise InvalidParameterError(f"labels must be non-empty and unique, got {list(self.labels)}")
        if isinstance(unsafe_labels, str):
            raise InvalidParameterError(
                f"unsafe_labels must be a sequence of label names, got the string {unsafe_labels!r}; "
                f"wrap it in a list: [{unsafe_labels!r}]"
            )
        unknown = [u for u in unsafe_labels if u not in self.labels]
        if unknown or not unsafe_labels:
            raise InvalidParameterError(
                f"unsafe_labels {list(unsafe_labels)} must be a non-empty subset of the labels; "
                f"unknown: {unknown}; valid labels: {', '.join(self.labels)}"
            )
        for pname, value in (("threshold", threshold), ("detect_threshold", detect_threshold),
                             ("iou_threshold", iou_threshold)):
            if not _is_real(value) or not 0.0 < float(value) < 1.0:
                raise InvalidParameterError(f"{pname} must be a number in (0, 1), got {value!r}")
        if not _is_int(input_size) or input_size < 32 or input_size % 32:
            raise InvalidParameterError(f"input_size must be a positive multiple of 32 (NudeNet: 320), got {input_size!r}")
        if not _is_int(batch_size) or batch_size < 1:
            raise InvalidParameterError(f"batch_size must be an integer of at least 1, got {batch_size!r}")
        if isinstance(target_layers, str):
            raise InvalidParameterError(
                f"target_layers must be a sequence of module names, got the string {target_layers!r}; "
                f"wrap it in a list: [{target_layers!r}]"
            )

        self.onnx_path = self._resolve_path(onnx_path)
        self.unsafe_labels = tuple(str(x) for x in unsafe_labels)
        self.threshold = float(threshold)
        self.detect_threshold = float(detect_threshold)
        self.iou_threshold = float(iou_threshold)
        self.input_size = int(input_size)
        self.batch_size = int(batch_size)
        self.name = name
        self.target_layer_names = tuple(DEFAULT_TARGET_LAYERS if target_layers is None else target_layers)
        self._unsafe_idx = np.array([self.labels.index(u) for u in self.unsafe_labels], dtype=np.int64)
        self._session, self._input_name = self._open_session()
        self._torch: torch.nn.Module | None = None
        self._torch_logits: torch.nn.Module | None = None
        self.config: dict[str, Any] = {
            "backend": "nudenet",
            "model_path": str(self.onnx_path),
            "input_size": self.input_size,
            "labels": list(self.labels),
            "unsafe_labels": list(self.unsafe_labels),
            "threshold": self.threshold,
            "detect_threshold": self.detect_threshold,
            "iou_threshold": self.iou_threshold,
            "preprocess": "pad bottom/right to square, resize (cv2 bilinear), /255, BGR",
            "target_layers": list(self.target_layer_names),
        }

    # -- loading ------------------------------------------------------------------------------
    @staticmethod
    def _resolve_path(onnx_path: str | os.PathLike[str] | None) -> Path:
        if onnx_path is None:
            return bundled_model_path()
        path = Path(onnx_path)
        if not path.is_file():
            raise ModelLoadError(
                f"onnx_path {str(path)!r} does not exist or is not a file; pass the path of a "
                "YOLOv8-style NudeNet .onnx file, or omit onnx_path to use the bundled 320n.onnx"
            )
        return path

    def _open_session(self) -> tuple[Any, str]:
        import onnxruntime

        from veil.classify.onnx import session_options

        try:
            session = onnxruntime.InferenceSession(str(self.onnx_path), session_options(),
                                                   providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise ModelLoadError(
                f"onnx_path {str(self.onnx_path)!r} could not be loaded by onnxruntime ({exc}); "
                "pass a valid YOLOv8 ONNX export"
            ) from exc
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or not outputs or len(outputs[0].shape) != 3:
            raise ModelLoadError(
                f"onnx_path {str(self.onnx_path)!r} is not a YOLOv8-style detector: expected one input "
                f"(N, 3, h, w) and an output (N, 4 + K, anchors), got inputs "
                f"{[i.shape for i in inputs]} and outputs {[o.shape for o in outputs]}"
            )
        channels = outputs[0].shape[1]
        if isinstance(channels, int) and channels != 4 + len(self.labels):
            raise ModelLoadError(
                f"onnx_path {str(self.onnx_path)!r} outputs {channels - 4} classes but "
                f"{len(self.labels)} labels were given; pass labels= with {channels - 4} names"
            )
        return session, inputs[0].name

    # -- Classifier ---------------------------------------------------------------------------
    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Letterbox]]:
        """Letterbox every image to ``input_size``² and stack: ``(N, 3, S, S)`` float32 and geometries."""
        blobs, geos = [], []
        for img in images:
            blob, geo = letterbox(img, self.input_size)
            blobs.append(blob)
            geos.append(geo)
        if not blobs:
            return np.zeros((0, 3, self.input_size, self.input_size), np.float32), []
        return np.stack(blobs), geos

    def raw_outputs(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """onnxruntime's raw output ``(N, 4 + K, anchors)``: boxes (cx, cy, w, h) then class scores."""
        chunks = []
        for i in range(0, len(images), self.batch_size):
            x, _ = self.preprocess(images[i : i + self.batch_size])
            out = self._run(x)
            for blob, row in zip(x, out, strict=True):
                self._remember(blob, row)
            chunks.append(out)
        if not chunks:
            return np.zeros((0, 4 + len(self.labels), 0), np.float32)
        return np.concatenate(chunks, 0)

    # The pipeline asks for the scores of an image and then for its detections: the network's
    # output for the last few inputs is kept (by a digest of the exact input), so it runs once.
    _MEMO_SIZE = 8

    def _remember(self, blob: np.ndarray, out: np.ndarray) -> None:
        memo = self.__dict__.setdefault("_memo", OrderedDict())
        memo[hashlib.blake2b(blob.tobytes(), digest_size=16).digest()] = out
        while len(memo) > self._MEMO_SIZE:
            memo.popitem(last=False)

    def _recall(self, blob: np.ndarray) -> np.ndarray | None:
        memo = self.__dict__.get("_memo")
        if not memo:
            return None
        out = memo.get(hashlib.blake2b(np.ascontiguousarray(blob).tobytes(), digest_size=16).digest())
        return None if out is None else np.array(out)

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run(None, {self._input_name: x})[0], dtype=np.float32)

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Per label, the highest class score over all anchors: ``(N, len(labels))`` in [0, 1]."""
        out = self.raw_outputs(images)
        if out.shape[0] == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return out[:, 4:, :].max(axis=2).astype(np.float32)

    def unsafe_score(self, proba: np.ndarray) -> np.ndarray:
        """The highest score among ``unsafe_labels``, shape ``(N,)``."""
        p = np.asarray(proba)
        if p.ndim != 2 or p.shape[1] != len(self.labels):
            raise InvalidParameterError(
                f"proba (shape {p.shape}) must be (N, {len(self.labels)}) as returned by predict_proba"
            )
        return p[:, self._unsafe_idx].max(axis=1)

    # -- DetectorClassifier -------------------------------------------------------------------
    def detect(self, image: np.ndarray, *, threshold: float | None = None) -> list[Detection]:
        """NudeNet's detections for one image, boxes ``(x, y, w, h)`` in its pixels, best first.

        ``threshold`` overrides :attr:`detect_threshold` for this call.
        """
        if threshold is not None and (not _is_real(threshold) or not 0.0 < float(threshold) < 1.0):
            raise InvalidParameterError(f"threshold must be a number in (0, 1), got {threshold!r}")
        thr = self.detect_threshold if threshold is None else float(threshold)
        blob, geo = letterbox(image, self.input_size)
        out = self._recall(blob)
        if out is None:
            out = self._run(blob[None])[0]
        return decode_detections(out, geo, self.labels, threshold=thr, iou_threshold=self.iou_threshold)

    # -- GradientClassifier -------------------------------------------------------------------
    def _build_torch(self) -> None:
        from veil.classify.onnx import convert_to_torch

        module = convert_to_torch(self.onnx_path)
        self._torch = module
        self._torch_logits = _class_logits_module(module)

    def torch_module(self) -> torch.nn.Module:
        """The onnx2torch conversion of the ONNX graph (eval mode); ``module(x)`` equals onnxruntime's output."""
        if self._torch is None:
            self._build_torch()
        return self._torch  # type: ignore[return-value]

    def torch_input(self, image: np.ndarray) -> torch.Tensor:
        """NudeNet's letterboxed input ``(1, 3, S, S)`` float32 (BGR, [0, 1])."""
        import torch

        blob, _ = letterbox(image, self.input_size)
        return torch.from_numpy(blob[None].copy())

    def torch_unsafe_score(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid logit of the best unsafe class score over all anchors, shape ``(N,)``.

        ``sigmoid`` of it equals :meth:`unsafe_score` of :meth:`predict_proba`, and it does
        not saturate the way the probability does.
        """
        import torch

        self.torch_module()
        idx = torch.as_tensor(self._unsafe_idx)
        if self._torch_logits is not None:
            logits = self._torch_logits(x)
            return logits[:, idx, :].amax(dim=(1, 2))
        # Graph without a final Sigmoid we can tap: logit of the probability (clamped to stay finite).
        proba = self._torch(x)[:, 4:, :]  # type: ignore[misc]
        return torch.logit(proba[:, idx, :].amax(dim=(1, 2)), eps=1e-6)

    def cam_target_layers(self) -> list[torch.nn.Module]:
        """The Detect head's last class-branch conv block per scale (40², 20², 10² at 320 input).

        See :data:`DEFAULT_TARGET_LAYERS`; override with ``target_layers=`` in the constructor.
        """
        modules = dict(self.torch_module().named_modules())
        missing = [n for n in self.target_layer_names if n not in modules]
        if missing:
            convs = [n for n, m in modules.items() if n.endswith("act/Mul")][-6:]
            raise InvalidParameterError(
                f"target_layers {missing} are not modules of the converted graph; "
                f"pass target_layers= with names such as {convs}"
            )
        return [modules[n] for n in self.target_layer_names]

    def attribution_to_image(self, attribution: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
        """Map an ``(h, w)`` map over the letterboxed input onto the ``(H, W)`` image.

        The padded bottom/right part is cropped away, then the rest is resized (bilinear).
        """
        att = np.asarray(attribution, dtype=np.float32)
        if att.ndim != 2:
            raise InvalidParameterError(f"attribution (shape {att.shape}) must be a 2-D map")
        height, width = int(image_shape[0]), int(image_shape[1])
        if height < 1 or width < 1:
            raise InvalidParameterError(f"image_shape {tuple(image_shape)} must be positive")
        side = max(height, width)
        ch = min(att.shape[0], max(1, math.ceil(att.shape[0] * height / side - 1e-9)))
        cw = min(att.shape[1], max(1, math.ceil(att.shape[1] * width / side - 1e-9)))
        crop = np.ascontiguousarray(att[:ch, :cw])
        return resize(crop, (height, width)).astype(np.float32)


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _class_logits_module(module: Any) -> Any:
    """A GraphModule sharing ``module``'s layers that returns the pre-sigmoid class logits.

    YOLOv8 exports end in ``Concat(boxes, Sigmoid(class_logits))``; returns None when the
    graph does not have that shape.
    """
    import torch
    import torch.fx

    graph = getattr(module, "graph", None)
    if graph is None:
        return None
    out_node = next((n for n in graph.nodes if n.op == "output"), None)
    if out_node is None:
        return None
    concat = out_node.args[0]
    if isinstance(concat, (tuple, list)):
        concat = concat[0]
    if not isinstance(concat, torch.fx.Node) or len(concat.args) < 2:
        return None
    sig = concat.args[-1]
    if not (isinstance(sig, torch.fx.Node) and sig.op == "call_module"
            and isinstance(module.get_submodule(str(sig.target)), torch.nn.Sigmoid)
            and sig.args and isinstance(sig.args[0], torch.fx.Node)):
        return None
    from veil.classify.onnx import graph_module_returning

    return graph_module_returning(module, sig.args[0])  # dead code elimination drops the box branch
