"""Writing one result to disk: the delivered image, the mask, the overlays and the JSON record.

The ``results.jsonl`` keys written here are a public interface: extend, never rename.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from veil.image import Metadata, fit_within, resize, save_delivered, save_image, save_mask
from veil.types import Result

#: Keys every ``results.jsonl`` record carries, in this order.
RECORD_KEYS = (
    "path", "unsafe", "scores", "counterfactual_found", "depth", "obfuscated_fraction",
    "scores_after", "output", "mask", "fail_closed", "error",
)


def error_record(path: str, error: str, **extra: Any) -> dict[str, Any]:
    """The record of an input that could not be processed at all (nothing is delivered).

    ``extra`` adds extension keys (``skipped`` for files that are not images, ``sha256``).
    """
    rec: dict[str, Any] = dict.fromkeys(RECORD_KEYS)
    rec.update(path=path, scores={}, scores_after={}, counterfactual_found=False,
               obfuscated_fraction=None, fail_closed=False, error=error)
    rec.update(extra)
    return rec


def overlay_attribution(delivered: np.ndarray, attribution: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The attribution heat map blended over the *delivered* image (never the raw one)."""
    from matplotlib import colormaps

    heat = colormaps["inferno"](np.clip(attribution, 0, 1))[..., :3]
    base = delivered.astype(np.float32) / 255.0
    return (255 * ((1 - alpha) * base + alpha * heat)).clip(0, 255).astype(np.uint8)


def overlay_regions(delivered: np.ndarray, segments: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Segment boundaries (white) and the obfuscated area's outline (red) over the delivered image."""
    from skimage.segmentation import find_boundaries

    out = delivered.copy()
    out[find_boundaries(segments, mode="inner")] = (255, 255, 255)
    edge = find_boundaries(mask.astype(np.int32), mode="inner") & mask
    if edge.any():
        from scipy.ndimage import binary_dilation

        out[binary_dilation(edge, iterations=1) & mask] = (230, 30, 30)
    return out


_UNSAFE_CHARS = re.compile(r"[^\w.\-]")
_MAX_COMPONENT = 120  # bytes; file systems stop at 255 and suffixes are added


def _safe_component(part: str) -> str:
    """A path component that is a plain, portable file name (no separators, dots or controls)."""
    cleaned = _UNSAFE_CHARS.sub("_", part).strip(".")
    if part.startswith(".") or not cleaned:
        cleaned = "_" + cleaned
    if len(cleaned.encode()) > _MAX_COMPONENT:
        digest = hashlib.sha256(part.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        cleaned = cleaned.encode()[: _MAX_COMPONENT - 9].decode("utf-8", "ignore") + "-" + digest
    return cleaned


def _stem(rel: Path) -> PurePosixPath:
    *dirs, name = rel.parts or ("_",)
    base, dot, _ext = name.rpartition(".")
    base = base if dot and base else name
    return PurePosixPath(*[_safe_component(d) for d in dirs], _safe_component(base))


def plan_names(items: Sequence[tuple[Path, Path]]) -> list[PurePosixPath]:
    """A unique, stable output stem for every ``(source, relative_name)`` input.

    The stem is the relative name without its last extension, each part reduced to a portable
    file name (``photo.1.png`` → ``photo.1``; ``..png`` → ``_``). Inputs whose stems would
    clash (``a.jpg`` and ``a.png``, the same name under two scanned folders, names equal but
    for case or odd characters) all get a suffix from a hash of their source path, so the names
    depend on the set of inputs, never on their order. Delivered images, masks and overlays
    are named after the stem (frames of animations add ``@k``, a character no stem contains).

    Examples
    --------
    >>> from pathlib import Path
    >>> [str(s) for s in plan_names([(Path("in/a.png"), Path("a.png")), (Path("in/b.1.jpg"), Path("b.1.jpg"))])]
    ['a', 'b.1']
    """
    stems = [_stem(rel) for _, rel in items]
    groups: dict[str, list[int]] = {}
    for i, stem in enumerate(stems):
        groups.setdefault(str(stem).lower(), []).append(i)
    for members in groups.values():
        if len(members) > 1:
            for i in members:
                digest = hashlib.sha256(str(Path(items[i][0]).absolute()).encode("utf-8", "surrogateescape"))
                stems[i] = stems[i].with_name(f"{stems[i].name}-{digest.hexdigest()[:8]}")
    return stems


class ResultWriter:
    """Writes results under ``out`` (``images/``, ``masks/``, ``overlays/``) and builds records.

    Every delivered image is re-encoded as PNG from the judged pixels
    (:func:`veil.image.save_delivered`): no other frame, thumbnail, trailing data, alpha or
    (unless ``metadata`` is given) metadata of the original leaves. Files are written under a
    temporary name and renamed, and removed again if any of them fails, so a delivered file
    always has its record.
    """

    def __init__(self, out: str | Path, *, overlays: bool = True, overlay_size: int = 1024) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.overlays = overlays
        self.overlay_size = overlay_size

    def write(self, result: Result, stem: PurePosixPath, display_path: str, *,
              metadata: Metadata | None = None) -> dict[str, Any]:
        """Write the files for one result and return its JSON record."""
        out_img = PurePosixPath("images") / f"{stem}.png"
        mask_path = PurePosixPath("masks") / f"{stem}.png"
        written: list[Path] = []

        def put(rel: PurePosixPath, save: Callable[[Path], None]) -> None:
            final = self.out / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(final.name + ".part")
            save(tmp)
            os.replace(tmp, final)
            written.append(final)

        overlays: dict[str, str] = {}
        try:
            put(out_img, lambda p: save_delivered(result.image, p, metadata=metadata))
            put(mask_path, lambda p: save_mask(result.mask, p))
            if self.overlays and result.attribution is not None:
                base = _display(result.image, result.attribution.shape, self.overlay_size)
                heat = _display_map(result.attribution, base.shape[:2])
                rel = PurePosixPath("overlays") / f"{stem}.attribution.png"
                put(rel, lambda p: save_image(overlay_attribution(base, heat), p, format="PNG"))
                overlays["attribution"] = rel.as_posix()
                if result.segments is not None:
                    segs = _display_map(result.segments, base.shape[:2], nearest=True)
                    mask = _display_map(result.mask, base.shape[:2], nearest=True)
                    rel = PurePosixPath("overlays") / f"{stem}.regions.png"
                    put(rel, lambda p: save_image(overlay_regions(base, segs, mask), p, format="PNG"))
                    overlays["regions"] = rel.as_posix()
        except BaseException:
            for f in written:
                f.unlink(missing_ok=True)
            for f in (self.out / out_img, self.out / mask_path):
                f.with_name(f.name + ".part").unlink(missing_ok=True)
            raise
        rec = record(result, display_path, out_img.as_posix(), mask_path.as_posix(), overlays)
        if metadata is not None:
            rec["metadata"] = {"found": metadata.found, "kept": [k for k in ("exif", "icc", "xmp")
                                                               if getattr(metadata, _META_FIELDS[k])]}
        return rec


_META_FIELDS = {"exif": "exif", "icc": "icc_profile", "xmp": "xmp"}


def _display(image: np.ndarray, shape: tuple[int, ...], limit: int) -> np.ndarray:
    """The delivered image at the size overlays are drawn at: the attribution's (the working
    resolution of large images), and at most ``limit`` pixels on the longer side."""
    size = fit_within(shape, limit)
    return image if image.shape[:2] == size else resize(image, size)


def _display_map(m: np.ndarray, shape: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    """A label map or mask (``nearest``) or a heat map at the display ``shape``, without
    full-size temporaries (nearest neighbours are picked by index)."""
    if m.shape[:2] == shape:
        return m
    if nearest:
        ys = np.arange(shape[0]) * m.shape[0] // shape[0]
        xs = np.arange(shape[1]) * m.shape[1] // shape[1]
        return m[np.ix_(ys, xs)]
    return resize(np.asarray(m, np.float32), shape)


def record(result: Result, path: str, output: str | None, mask: str | None,
           overlays: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``results.jsonl`` record of one result."""
    rec: dict[str, Any] = {
        "path": path,
        "unsafe": bool(result.unsafe),
        "scores": result.scores,
        "counterfactual_found": bool(result.counterfactual_found),
        "depth": result.depth,
        "obfuscated_fraction": round(float(result.obfuscated_fraction), 6),
        "scores_after": result.scores_after,
        "output": output,
        "mask": mask,
        "fail_closed": bool(result.fail_closed),
        "error": result.error,
        # extensions
        "note": result.note,
        "models": [m.to_dict() for m in result.models],
        "models_after": [{"name": m.name, "unsafe_score": round(m.unsafe_score, 6), "unsafe": m.unsafe}
                         for m in result.models_after],
        "detections": [dict(d.to_dict(), model=m.name) for m in result.models for d in m.detections],
        "extent": result.settings.get("extent"),
        "regions": [r.to_dict() for r in result.regions],
        "overlays": overlays or {},
        "n_evaluated": result.n_evaluated,
        "seed": result.seed,
        "timings": {k: round(float(v), 4) for k, v in result.timings.items()},
    }
    if result.rationale is not None:
        rec["rationale"] = result.rationale
    return rec
