"""A small corpus of awkward and hostile image files, generated (never checked in as binaries).

Each builder returns the file's bytes. "Unsafe" content is a saturated magenta patch, which
:class:`MagentaClassifier` flags; a test then checks that no magenta pixel leaves Veil
unobscured in any delivered file.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

MAGENTA = (255, 0, 255)


def calm(size: tuple[int, int] = (96, 128), seed: int = 0) -> np.ndarray:
    """A smooth, safe background (no magenta anywhere)."""
    h, w = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([60 + 80 * xx / w, 90 + 60 * yy / h, 70 + 40 * (xx + yy) / (h + w)], -1)
    return (base + rng.normal(0, 3, base.shape)).clip(0, 255).astype(np.uint8)


def with_patch(img: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """A copy of ``img`` with a magenta patch (``box`` = y, x, h, w; default a quarter-size square)."""
    out = img.copy()
    h, w = img.shape[:2]
    y, x, ph, pw = box or (h // 4, w // 4, h // 3, w // 3)
    out[y : y + ph, x : x + pw] = MAGENTA
    return out


def magenta_pixels(img: np.ndarray) -> int:
    """How many pixels are (near-)magenta: red and blue high, green low."""
    a = np.asarray(img).astype(np.int16)
    return int(((a[..., 0] > 180) & (a[..., 1] < 90) & (a[..., 2] > 180)).sum())


def encode(arr: np.ndarray, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def animated(frames: Sequence[np.ndarray], fmt: str) -> bytes:
    """A multi-frame file: GIF, PNG (APNG), WEBP (animated) or TIFF (multi-page)."""
    pils = [Image.fromarray(f) for f in frames]
    kw: dict[str, Any] = {"save_all": True, "append_images": pils[1:]}
    if fmt == "WEBP":
        kw["lossless"] = True
    if fmt in ("GIF", "PNG", "WEBP"):
        kw["duration"] = 100
    buf = io.BytesIO()
    pils[0].save(buf, format=fmt, **kw)
    return buf.getvalue()


def mpo(frames: Sequence[np.ndarray]) -> bytes:
    """A multi-picture JPEG (MPO), as stereo cameras write."""
    pils = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    pils[0].save(buf, format="MPO", save_all=True, append_images=pils[1:])
    return buf.getvalue()


def _ifd(entries: list[tuple[int, int, int, bytes]], next_offset: int) -> bytes:
    out = struct.pack(">H", len(entries))
    for tag, typ, count, value in entries:
        out += struct.pack(">HHI", tag, typ, count) + value.ljust(4, b"\0")
    return out + struct.pack(">I", next_offset)


def exif_with_thumbnail(thumbnail_jpeg: bytes, *, gps: bool = True) -> bytes:
    """An APP1 EXIF block (``Exif\\0\\0`` + big-endian TIFF) whose IFD1 holds a JPEG thumbnail,
    and, with ``gps``, a GPS IFD with a latitude reference (a location that must not leak)."""
    # layout: header(8) | IFD0 | GPS IFD | IFD1 | thumbnail
    n0 = 2 if gps else 1
    ifd0_len = 2 + 12 * n0 + 4
    gps_len = 2 + 12 * 1 + 4 if gps else 0
    ifd1_off = 8 + ifd0_len + gps_len
    ifd1_len = 2 + 12 * 3 + 4
    thumb_off = ifd1_off + ifd1_len
    entries0 = [(0x010F, 2, 4, b"Veil")]  # Make
    if gps:
        entries0.append((0x8825, 4, 1, struct.pack(">I", 8 + ifd0_len)))
    tiff = b"MM\0*" + struct.pack(">I", 8) + _ifd(entries0, ifd1_off)
    if gps:
        tiff += _ifd([(0x0001, 2, 2, b"N\0")], 0)  # GPSLatitudeRef
    tiff += _ifd([(0x0103, 3, 1, struct.pack(">H", 6)),
                  (0x0201, 4, 1, struct.pack(">I", thumb_off)),
                  (0x0202, 4, 1, struct.pack(">I", len(thumbnail_jpeg)))], 0)
    return b"Exif\0\0" + tiff + thumbnail_jpeg


def jpeg_with_thumbnail(main: np.ndarray, thumb: np.ndarray) -> bytes:
    return encode(main, "JPEG", quality=95, exif=exif_with_thumbnail(encode(thumb, "JPEG", quality=90)))


def trailing_payload(main: np.ndarray, payload: np.ndarray) -> bytes:
    """A JPEG with a whole PNG appended after its end-of-image marker."""
    return encode(main, "JPEG", quality=95) + encode(payload, "PNG")


def hidden_under_alpha(visible: np.ndarray, hidden: np.ndarray) -> bytes:
    """An RGBA PNG whose colour channels hold ``hidden`` where alpha is 0 and ``visible`` elsewhere."""
    alpha = np.full(visible.shape[:2], 255, np.uint8)
    diff = np.any(hidden != visible, axis=2)
    alpha[diff] = 0
    rgb = np.where(diff[..., None], hidden, visible)
    return encode(np.dstack([rgb, alpha]), "PNG")


def corpus(seed: int = 0) -> dict[str, bytes]:
    """Every hostile file of the security tests, by file name. Each carries magenta that Veil
    must either obscure or never deliver; none of them shows it on its first frame's composite."""
    safe = calm(seed=seed)
    bad = with_patch(safe)
    small_bad = with_patch(calm((24, 32), seed))
    return {
        "anim.gif": animated([safe, bad], "GIF"),
        "anim.png": animated([safe, bad], "PNG"),
        "anim.webp": animated([safe, bad], "WEBP"),
        "pages.tif": animated([safe, bad], "TIFF"),
        "stereo.mpo": mpo([safe, bad]),
        "thumb.jpg": jpeg_with_thumbnail(safe, small_bad),
        "trailing.jpg": trailing_payload(safe, bad),
        "alpha.png": hidden_under_alpha(safe, bad),
    }


class MagentaClassifier:
    """A gradient-free classifier that calls an image unsafe when it shows magenta.

    The unsafe score ``c / (c + 2)`` of the magenta pixel count ``c`` is above 0.5 from three
    pixels on, and falls as pixels are hidden, so occlusion attribution can rank regions.
    ``calls`` keeps the shapes of every batch it judged.
    """

    labels = ("safe", "unsafe")
    unsafe_labels = ("unsafe",)
    threshold = 0.5

    def __init__(self, name: str = "magenta") -> None:
        self.name = name
        self.config: dict[str, Any] = {}
        self.calls: list[list[tuple[int, ...]]] = []

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        self.calls.append([np.asarray(im).shape for im in images])
        c = np.array([magenta_pixels(im) for im in images], dtype=np.float64)
        s = c / (c + 2.0)
        return np.stack([1 - s, s], axis=1)

    def unsafe_score(self, proba: np.ndarray) -> np.ndarray:
        return np.asarray(proba)[:, 1]


class Garbage(MagentaClassifier):
    """A :class:`MagentaClassifier` whose ``bad``-th call (0-based; None: every call) returns
    ``garbage(proba)`` instead of its real output."""

    def __init__(self, garbage: Any, bad: int | None = 0, name: str = "garbage") -> None:
        super().__init__(name)
        self.garbage, self.bad, self.n = garbage, bad, 0

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        proba = super().predict_proba(images)
        k, self.n = self.n, self.n + 1
        return self.garbage(proba) if self.bad is None or k == self.bad else proba
