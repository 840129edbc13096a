"""A classifier over any torch ``nn.Module`` that maps a normalized image batch to logits.

This is what model cards (torchvision / timm checkpoints) load into, and what
tests and training build directly.

Scores may come from onnxruntime instead of the module (:meth:`TorchClassifier.score_with_onnxruntime`,
what :func:`veil.classify.load_model_card` does on the CPU): the module is exported to ONNX once, the
graph is cached on disk (:func:`onnx_cache_dir`) under a hash of the weights, and checked against the
module on a probe batch before it is used. Gradients (FullGrad, the Grad-CAM family) still run the
module. On one thread onnxruntime classifies a MobileNetV3-Small at 128 px 1.4–3 times faster and a
ResNet-18 1.0–1.3 times faster, the smaller the batch the larger the gain (``bench/torch_scoring.py``,
docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from veil.errors import InvalidParameterError, ModelLoadError
from veil.image import as_rgb_uint8, resize, shrink

log = logging.getLogger(__name__)

#: Bumped when the export below changes, so that graphs cached by an older Veil are not reused.
EXPORT_VERSION = 1

#: How a CPU classifier loaded from a card scores: ``auto`` (onnxruntime when the export loads and agrees
#: with the module, else the module), ``onnxruntime`` (an error if it cannot) or ``torch`` (the module).
SCORINGS = ("auto", "onnxruntime", "torch")


def onnx_cache_dir() -> Path:
    """Where exported graphs are kept: ``$VEIL_CACHE_DIR/onnx``, else ``$XDG_CACHE_HOME/veil/onnx``, else
    ``~/.cache/veil/onnx``.

    Examples
    --------
    >>> onnx_cache_dir().name
    'onnx'
    """
    root = os.environ.get("VEIL_CACHE_DIR", "").strip()
    if root:
        return Path(root) / "onnx"
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "veil" / "onnx"


def _resized(t: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, 3, H, W)`` uint8 → ``(N, 3, size, size)`` float in [0, 1], contiguous: the one resize of squash."""
    if t.shape[-2:] != (size, size):
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return t.contiguous().float().div_(255.0)


def squash(image: np.ndarray, input_size: int) -> torch.Tensor:
    """One image as a ``(3, S, S)`` float tensor in [0, 1]: the whole picture resized to ``input_size``².

    Resizing is bilinear and antialiased, on the 8-bit pixels (torch's fast integer path, the one
    torchvision's ``Resize`` takes on uint8 tensors; each value is rounded to a whole grey level before
    it becomes a float); a camera-sized image is block-averaged first. This is the geometry of
    :class:`TorchClassifier` and of :func:`veil.training.classifier.train` (which adds augmentation and
    normalization after it).

    Examples
    --------
    >>> tuple(squash(np.zeros((10, 12, 3), np.uint8), 8).shape)
    (3, 8, 8)
    """
    arr = as_rgb_uint8(image)
    factor = min(arr.shape[:2]) // (4 * input_size)
    if factor >= 2:
        arr = shrink(arr, factor)
    return _resized(torch.from_numpy(arr if arr.flags.writeable else arr.copy()).permute(2, 0, 1).unsqueeze(0),
                    int(input_size))[0]


def preprocess_images(images: Sequence[np.ndarray], input_size: int, mean: Sequence[float] | torch.Tensor,
                      std: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """A batch as the network input ``(N, 3, S, S)``: :func:`squash` each image, then normalize.

    The one preprocessing of :class:`TorchClassifier` and of the trainer's evaluation, so a
    card's recorded metrics are those of the loaded classifier.

    Examples
    --------
    >>> x = preprocess_images([np.full((4, 4, 3), 255, np.uint8)], 8, (0.5,) * 3, (0.5,) * 3)
    >>> tuple(x.shape), float(x.max())
    ((1, 3, 8, 8), 1.0)
    """
    m = torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    size = int(input_size)
    arrs = [as_rgb_uint8(img) for img in images]
    if len(arrs) > 1 and len({a.shape for a in arrs}) == 1 and min(arrs[0].shape[:2]) // (4 * size) < 2:
        # (candidates of one image, all of its size, none to block-average: one resize for the batch)
        x = _resized(torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2), size)
    else:
        x = torch.stack([squash(a, size) for a in arrs], 0)
    return (x - m) / s


class TorchClassifier:
    """Whole-image classifier: resize to ``input_size``² (bilinear, antialiased), normalize, softmax.

    An image is unsafe when the summed probability of ``unsafe_labels`` exceeds ``threshold``.

    Parameters
    ----------
    module : torch.nn.Module
        Maps ``(N, 3, S, S)`` normalized float input to ``(N, len(labels))`` logits.
    labels : sequence of str
        Output names, in the module's output order.
    unsafe_labels : sequence of str
        The subset of ``labels`` whose summed probability is the unsafe score.
    input_size : int
        Side ``S`` of the square network input.
    mean, std : sequence of 3 floats
        Normalization applied after scaling pixels to [0, 1].
    threshold : float
        Decision threshold on the unsafe score.
    name : str
        Used as the ``model/`` prefix when several classifiers run together.
    batch_size : int
        Images per forward pass in :meth:`predict_proba`.

    Examples
    --------
    >>> import torch, numpy as np
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2))
    >>> clf = TorchClassifier(net, ["safe", "unsafe"], ["unsafe"], input_size=8)
    >>> clf.predict_proba([np.zeros((10, 12, 3), np.uint8)]).shape
    (1, 2)
    """

    def __init__(
        self,
        module: torch.nn.Module,
        labels: Sequence[str],
        unsafe_labels: Sequence[str],
        *,
        input_size: int = 224,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        threshold: float = 0.5,
        name: str = "model",
        batch_size: int = 16,
        config: dict[str, Any] | None = None,
        target_layers: list[torch.nn.Module] | None = None,
    ) -> None:
        self.labels = tuple(str(x) for x in labels)
        if len(set(self.labels)) != len(self.labels):
            raise InvalidParameterError(f"labels must be unique, got {list(self.labels)}")
        missing = [u for u in unsafe_labels if u not in self.labels]
        if missing or not unsafe_labels:
            raise InvalidParameterError(
                f"unsafe_labels {list(unsafe_labels)} must be a non-empty subset of labels {list(self.labels)}"
            )
        if not 0.0 < threshold < 1.0:
            raise InvalidParameterError(f"threshold must lie in (0, 1), got {threshold}")
        if int(input_size) < 8:
            raise InvalidParameterError(f"input_size must be at least 8, got {input_size}")
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise InvalidParameterError(f"mean and std need 3 values (std > 0), got {mean} and {std}")
        self.module = module.eval()
        self.unsafe_labels = tuple(str(x) for x in unsafe_labels)
        self.input_size = int(input_size)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.threshold = float(threshold)
        self.name = name
        self.batch_size = int(batch_size)
        self.config = dict(config or {})
        self._unsafe_idx = torch.tensor([self.labels.index(u) for u in self.unsafe_labels])
        self._target_layers = target_layers
        self._session: Any = None  # (an onnxruntime session scoring in the module's place, when asked)

    # -- Classifier ---------------------------------------------------------------------------
    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Stack, resize (bilinear, antialiased) and normalize a batch into ``(N, 3, S, S)``."""
        return preprocess_images(images, self.input_size, self.mean, self.std)

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                x = self.preprocess(images[i : i + self.batch_size])
                out.append(torch.softmax(self._logits(x), dim=1).numpy())
        if not out:
            return np.zeros((0, len(self.labels)), np.float32)
        return np.concatenate(out, 0).astype(np.float32)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        if self._session is None:
            return self.module(x).float()
        return torch.from_numpy(self._session.run(None, {"x": x.numpy()})[0]).float()

    @property
    def scoring(self) -> str:
        """``"onnxruntime"`` when scores come from the exported graph, else ``"torch"``."""
        return "torch" if self._session is None else "onnxruntime"

    def score_with_onnxruntime(self, *, cache: bool = True, atol: float = 1e-4) -> None:
        """Score through onnxruntime: the module exported to ONNX (once; cached on disk with ``cache``)
        and checked against the module's logits on a probe batch (``atol``). Gradients still run the
        module, so call this again after changing its weights.

        Raises
        ------
        ModelLoadError
            The module does not export, onnxruntime cannot run the graph, or its logits differ from the
            module's by more than ``atol``; the classifier then still scores with the module.

        Examples
        --------
        >>> import torch, numpy as np
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
        >>> clf = TorchClassifier(net, ["safe", "unsafe"], ["unsafe"], input_size=8)
        >>> clf.score_with_onnxruntime(cache=False)
        >>> clf.scoring, clf.predict_proba([np.zeros((10, 12, 3), np.uint8)]).shape
        ('onnxruntime', (1, 2))
        """
        import onnxruntime

        self._session = None
        probe = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3, self.input_size, self.input_size))
                                 .astype(np.float32))
        with torch.inference_mode():
            want = self.module(probe).float().numpy()  # (also initialises lazy modules before the export)
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()  # (sized like the pool the module runs on)
        opts.inter_op_num_threads = 1
        for refresh in (False, True):  # (a cached graph that fails is exported again, once, and replaced)
            graph, cached = _exported(self.module, self.input_size, cache=cache, refresh=refresh)
            try:
                try:
                    session = onnxruntime.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
                    got = session.run(None, {"x": probe.numpy()})[0]
                except Exception as exc:  # onnxruntime raises its own untyped errors
                    raise ModelLoadError(f"onnxruntime could not run the exported {self.name!r} ({exc})") from exc
                err = float(np.abs(np.asarray(got, np.float64) - want).max()) if np.shape(got) == want.shape else np.inf
                if not err <= atol:
                    raise ModelLoadError(f"the exported {self.name!r} gives logits {err:.3g} away from the module's "
                                         f"(at most {atol:g} allowed); it keeps scoring with torch")
            except ModelLoadError:
                if cached and not refresh:
                    log.debug("the cached graph of %r failed; exporting it again", self.name)
                    continue
                raise
            self._session = session
            return

    def __getstate__(self) -> dict[str, Any]:
        # (an onnxruntime session does not pickle; the copy scores with the module)
        return {**self.__dict__, "_session": None}

    def unsafe_score(self, proba: np.ndarray) -> np.ndarray:
        return np.asarray(proba)[:, self._unsafe_idx.numpy()].sum(axis=1)

    # -- GradientClassifier -------------------------------------------------------------------
    def torch_module(self) -> torch.nn.Module:
        return self.module

    def torch_input(self, image: np.ndarray) -> torch.Tensor:
        return self.preprocess([image])

    def torch_unsafe_score(self, x: torch.Tensor) -> torch.Tensor:
        """Log-odds of the unsafe probability: monotone in the score and free of softmax saturation."""
        logp = torch.log_softmax(self.module(x).float(), dim=1)
        log_unsafe = torch.logsumexp(logp[:, self._unsafe_idx], dim=1)
        safe_mask = torch.ones(logp.shape[1], dtype=torch.bool)
        safe_mask[self._unsafe_idx] = False
        if not bool(safe_mask.any()):
            return log_unsafe
        log_safe = torch.logsumexp(logp[:, safe_mask], dim=1)
        return log_unsafe - log_safe

    def cam_target_layers(self) -> list[torch.nn.Module]:
        if self._target_layers is not None:
            return list(self._target_layers)
        return [_last_conv_block(self.module)]

    def attribution_to_image(self, attribution: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
        return resize(np.asarray(attribution, np.float32), tuple(image_shape[:2]))  # type: ignore[arg-type]


class DeviceTorchClassifier(TorchClassifier):
    """A :class:`TorchClassifier` whose module lives on a non-CPU device (``load_model_card(device=...)``)."""

    def __init__(self, *args: Any, device: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.device = device
        self.module.to(device)

    def preprocess(self, images: Sequence[np.ndarray]) -> Any:
        return super().preprocess(images).to(self.device)

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                x = self.preprocess(images[i : i + self.batch_size])
                out.append(torch.softmax(self.module(x).float(), dim=1).cpu().numpy())
        if not out:
            return np.zeros((0, len(self.labels)), np.float32)
        return np.concatenate(out, 0).astype(np.float32)


def _exported(module: torch.nn.Module, input_size: int, *, cache: bool, refresh: bool = False) -> tuple[bytes, bool]:
    """``module`` as an ONNX graph (input ``x``: ``(N, 3, S, S)``, output ``y``: logits, batch axis free) and
    whether it was read from the cache (where the same weights exported by this torch are kept; with
    ``refresh``, it is exported again and the cache entry replaced)."""
    h = hashlib.sha256(f"{EXPORT_VERSION}|{torch.__version__}|{type(module).__qualname__}|{input_size}".encode())
    for name, t in module.state_dict().items():
        h.update(f"|{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        # (as raw bytes: numpy has no bfloat16)
        h.update(torch.flatten(t.detach().cpu().contiguous()).view(torch.uint8).numpy().tobytes())
    path = onnx_cache_dir() / f"{h.hexdigest()[:32]}.onnx"
    if cache and not refresh and path.is_file():
        try:
            return path.read_bytes(), True
        except OSError as exc:
            log.debug("cached graph %s unreadable (%s); exporting again", path, exc)
    was_training = module.training
    module.eval()
    try:
        with tempfile.TemporaryDirectory(prefix="veil-export-") as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (the exporter's deprecation notes and tracer warnings)
            out = Path(tmp) / "model.onnx"
            torch.onnx.export(module, (torch.zeros(1, 3, input_size, input_size),), out, input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
            graph = out.read_bytes()
    except Exception as exc:  # the exporter raises many untyped errors for what it cannot trace
        raise ModelLoadError(f"the module ({type(module).__name__}) does not export to ONNX ({exc})") from exc
    finally:
        module.train(was_training)
    if cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            part = path.with_suffix(f".{os.getpid()}.tmp")
            part.write_bytes(graph)
            os.replace(part, path)
        except OSError as exc:  # (a read-only home: the graph is used, not kept)
            log.debug("could not cache the exported graph at %s (%s)", path, exc)
    return graph, False


def _last_conv_block(module: torch.nn.Module) -> torch.nn.Module:
    """The top-level child containing the last Conv2d (e.g. ``layer4`` of a ResNet), or that conv."""
    last_conv = None
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            last_conv = m
    if last_conv is None:
        raise InvalidParameterError("model has no Conv2d layer; pass target_layers explicitly")
    # Prefer the last element of the deepest Sequential that holds the conv (ResNet's layer4[-1]).
    best: torch.nn.Module = last_conv
    for m in module.modules():
        if isinstance(m, torch.nn.Sequential) and len(m) > 0:
            tail = m[-1]
            if any(sub is last_conv for sub in tail.modules()) and tail is not module:
                best = tail
    return best
