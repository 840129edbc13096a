"""Writing one result to disk: the delivered image, the mask, the overlays and the JSON record.

The ``results.jsonl`` keys written here are a public interface: extend, never rename.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from veil.image import save_image
from veil.types import Result

#: Keys every ``results.jsonl`` record carries, in this order.
RECORD_KEYS = (
    "path", "unsafe", "scores", "counterfactual_found", "depth", "obfuscated_fraction",
    "scores_after", "output", "mask", "fail_closed", "error",
)


def error_record(path: str, error: str) -> dict[str, Any]:
    """The record of an input that could not be processed at all (nothing is delivered)."""
    rec: dict[str, Any] = dict.fromkeys(RECORD_KEYS)
    rec.update(path=path, scores={}, scores_after={}, counterfactual_found=False,
               obfuscated_fraction=None, fail_closed=False, error=error)
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


def _unique(path: Path, taken: set[Path]) -> Path:
    candidate, k = path, 1
    while candidate in taken:
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
        k += 1
    taken.add(candidate)
    return candidate


class ResultWriter:
    """Writes results under ``out`` (``images/``, ``masks/``, ``overlays/``) and builds records."""

    def __init__(self, out: str | Path, *, overlays: bool = True) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.overlays = overlays
        self._taken: set[Path] = set()

    def write(self, result: Result, source: Path | None, rel: Path, display_path: str) -> dict[str, Any]:
        """Write the files for one result and return its JSON record."""
        stem = _unique(rel.with_suffix(""), self._taken)
        obfuscated = result.fail_closed or result.counterfactual_found or bool(result.mask.any())
        if not obfuscated and source is not None and source.is_file():
            # Judged safe: deliver the very file, so pixels (and lossless encoding) are untouched.
            out_img = Path("images") / stem.with_suffix(source.suffix.lower() or ".png")
            (self.out / out_img).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, self.out / out_img)
        else:
            # Obfuscated output is PNG: lossless, so the file is exactly the image re-classified.
            out_img = Path("images") / stem.with_suffix(".png")
            save_image(result.image, self.out / out_img)
        mask_path = Path("masks") / stem.with_suffix(".png")
        save_image(np.where(result.mask, 255, 0).astype(np.uint8), self.out / mask_path)

        overlays: dict[str, str] = {}
        if self.overlays and result.attribution is not None:
            p = Path("overlays") / f"{stem}.attribution.png"
            save_image(overlay_attribution(result.image, result.attribution), self.out / p)
            overlays["attribution"] = p.as_posix()
            if result.segments is not None:
                p = Path("overlays") / f"{stem}.regions.png"
                save_image(overlay_regions(result.image, result.segments, result.mask), self.out / p)
                overlays["regions"] = p.as_posix()
        return record(result, display_path, out_img.as_posix(), mask_path.as_posix(), overlays)


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
