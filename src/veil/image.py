"""The one place images are decoded, validated and normalized.

Everything downstream sees H×W×3 ``uint8`` RGB arrays (or float32 in [0, 1]
where stated). Label maps are H×W ``int32`` from 0; attribution maps H×W
``float32`` in [0, 1].
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from veil.errors import InvalidImageError, InvalidParameterError

#: Default upper bound on decoded pixels (width × height), a guard against decompression bombs.
DEFAULT_MAX_PIXELS = 64_000_000

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")

ImageInput = str | os.PathLike | bytes | np.ndarray | Image.Image


def _open(source: str | os.PathLike | bytes) -> Image.Image:
    try:
        if isinstance(source, bytes):
            if len(source) == 0:
                raise InvalidImageError("image data is empty (0 bytes)")
            return Image.open(io.BytesIO(source))
        path = Path(source)
        if not path.exists():
            raise InvalidImageError(f"image file {str(path)!r} does not exist")
        if path.is_dir():
            raise InvalidImageError(f"{str(path)!r} is a directory, not an image file")
        if path.stat().st_size == 0:
            raise InvalidImageError(f"image file {str(path)!r} is empty (0 bytes)")
        return Image.open(path)
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(f"image refused before decoding, over the pixel limit: {exc}") from exc
    except UnidentifiedImageError as exc:
        name = "image data" if isinstance(source, bytes) else repr(str(source))
        raise InvalidImageError(f"{name} is not a recognised image format") from exc
    except OSError as exc:
        raise InvalidImageError(f"cannot read image: {exc}") from exc


def load_image(source: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode any supported input into an H×W×3 ``uint8`` RGB array.

    JPEG, PNG, WebP, BMP, TIFF and GIF (first frame) are supported. EXIF
    orientation is applied and every mode (palette, grayscale, CMYK, 16-bit,
    alpha) becomes RGB; transparent pixels are composited over white.

    Parameters
    ----------
    source : path, bytes, ndarray or PIL image
        The image. Arrays are validated and converted with :func:`as_rgb_uint8`.
    max_pixels : int, optional
        Refuse images with more than this many pixels before decoding them.

    Raises
    ------
    InvalidImageError
        Empty, truncated, unrecognised or oversized input.

    Examples
    --------
    >>> import numpy as np
    >>> load_image(np.zeros((4, 5), np.uint8)).shape
    (4, 5, 3)
    """
    if max_pixels <= 0:
        raise InvalidParameterError(f"max_pixels must be positive, got {max_pixels}")
    if isinstance(source, np.ndarray):
        _check_pixels(source.shape[0] * source.shape[1] if source.ndim >= 2 else 0, max_pixels)
        out = as_rgb_uint8(source)
        return out.copy() if np.shares_memory(out, source) else out
    img = source if isinstance(source, Image.Image) else _open(source)
    width, height = img.size
    _check_pixels(width * height, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.seek(0)
            img.load()
            img = ImageOps.exif_transpose(img)
            rgb = _to_rgb(img)
    except InvalidImageError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning, EOFError) as exc:
        raise InvalidImageError(f"cannot decode image (truncated or corrupt?): {exc}") from exc
    arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidImageError(f"decoded image has unusable shape {arr.shape}")
    return np.ascontiguousarray(arr)


def _check_pixels(n: int, max_pixels: int) -> None:
    if n > max_pixels:
        raise InvalidImageError(
            f"image has {n:,} pixels, more than the limit of {max_pixels:,} "
            "(raise max_pixels if this is expected)"
        )


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size else 1.0
        arr = (arr / (hi if hi > 0 else 1.0) * 255.0).round().astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    if img.mode == "F":
        return Image.fromarray(as_rgb_uint8(np.asarray(img)))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Validate an array image and return it as H×W×3 ``uint8`` (a copy when converted).

    Accepts H×W (gray), H×W×1, H×W×3 and H×W×4 (alpha dropped) arrays of
    ``uint8``, ``bool``, integer or float (floats must be in [0, 1]).
    """
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(f"image must be a numpy array, got {type(image).__name__}")
    arr = image
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise InvalidImageError(
            f"image (shape {image.shape}) must be H×W, H×W×1, H×W×3 or H×W×4"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidImageError(f"image (shape {image.shape}) is empty")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == bool:
        return np.ascontiguousarray(arr.astype(np.uint8) * 255)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise InvalidImageError("float image contains NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise InvalidImageError(
                f"float image values must lie in [0, 1], got range [{lo:.3g}, {hi:.3g}]"
            )
        return np.ascontiguousarray((arr * 255.0).round().astype(np.uint8))
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise InvalidImageError(
                f"integer image values must lie in [0, 255], got range [{lo}, {hi}]"
            )
        return np.ascontiguousarray(arr.astype(np.uint8))
    raise InvalidImageError(f"unsupported image dtype {arr.dtype}")


def to_float(image: np.ndarray) -> np.ndarray:
    """H×W×3 ``uint8`` → float32 in [0, 1]."""
    return as_rgb_uint8(image).astype(np.float32) / 255.0


def save_image(image: np.ndarray, path: str | os.PathLike) -> None:
    """Write an RGB ``uint8`` (or H×W ``uint8`` mask) array; format from the extension."""
    arr = np.asarray(image)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def resize(image: np.ndarray, size: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    """Resize an H×W×C ``uint8`` or H×W float array to ``(height, width)``."""
    h, w = size
    if image.ndim == 2 and image.dtype != np.uint8:
        pil = Image.fromarray(image.astype(np.float32), mode="F")
        out = pil.resize((w, h), Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR)
        return np.asarray(out, dtype=np.float32)
    pil = Image.fromarray(image)
    return np.asarray(pil.resize((w, h), Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR))


def iter_image_files(paths: list[str | os.PathLike]) -> list[tuple[Path, Path]]:
    """Expand files and folders (recursively) into ``(file, relative_name)`` pairs.

    Folders contribute every file with an image extension, sorted; files given
    explicitly are kept whatever their extension so that a bad input yields a
    per-item error instead of being silently skipped.
    """
    out: list[tuple[Path, Path]] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
                    out.append((f, f.relative_to(path)))
        else:
            out.append((path, Path(path.name)))
    return out
