"""What a worker does with one job, and the moderator's mask correction.

Both call the same :class:`~veil.pipeline.Safeguarder` as ``veil scan`` and build the record
with :class:`~veil.output.ResultWriter` (the ``results.jsonl`` record); the files it writes
are moved into the blob store by content hash, and the record's ``output``, ``mask`` and
``overlays`` name the API routes that serve them.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from veil.errors import InvalidParameterError, VeilError
from veil.image import fit_within, frame_count, load_image, read_metadata, resize, save_delivered
from veil.output import ResultWriter, error_record
from veil.pipeline import Safeguarder
from veil.store import ConflictError, Store
from veil.store.models import Item
from veil.types import ModelOutput, Result

#: Items whose unsafe score lies within this distance of a model's threshold go to the queue.
DEFAULT_NEAR = 0.1


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def png_bytes(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB array, encoded by :func:`veil.image.save_delivered` (pixels only)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "preview.png"
        save_delivered(image, path)
        return path.read_bytes()


def load_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def routes(item_id: str, rec: dict[str, Any]) -> dict[str, Any]:
    """The record with its file paths replaced by the routes that serve them."""
    base = f"/v1/images/{item_id}"
    out = dict(rec)
    if rec.get("output"):
        out["output"] = f"{base}/delivered"
    if rec.get("mask"):
        out["mask"] = f"{base}/mask"
    out["overlays"] = {name: f"{base}/overlays/{name}" for name in (rec.get("overlays") or {})}
    return out


def review_fields(models: list[ModelOutput], *, fail_closed: bool, near: float) -> dict[str, Any]:
    """Queue fields: does it need a person, its highest unsafe score, categories and models that flagged."""
    flagged = [m for m in models if m.unsafe]
    cats = []
    for m in flagged:
        unsafe_probs = {k: v for k, v in m.proba.items() if k in m.unsafe_labels} or m.proba
        cats.append(max(unsafe_probs, key=lambda k: unsafe_probs[k]))
    close = any(abs(m.unsafe_score - m.threshold) <= near for m in models)
    return {
        "needs_review": bool(flagged or fail_closed or close),
        "max_score": max((float(m.unsafe_score) for m in models), default=None),
        "categories": "," + ",".join(sorted(set(cats))) + "," if cats else "",
        "models": "," + ",".join(sorted({m.name for m in flagged})) + "," if flagged else "",
    }


def _store_result(store: Store, item: Item, result: Result, rec_path: str, *, extra: dict[str, Any],
                  near: float) -> dict[str, Any]:
    """Write ``result`` with a ResultWriter into a temporary folder, move the files into blobs,
    and return the item's new column values."""
    tmp_root = store.data / "tmp"
    tmp_root.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        writer = ResultWriter(tmp, overlays=True)
        rec = writer.write(result, PurePosixPath("item"), rec_path)
        rec.update(extra)
        delivered = store.blobs.put_file(Path(tmp) / rec["output"])
        mask = store.blobs.put_file(Path(tmp) / rec["mask"])
        blobs: dict[str, Any] = {f"overlay:{k}": store.blobs.put_file(Path(tmp) / v)
                                 for k, v in rec["overlays"].items()}
    if result.segments is not None:
        blobs["segments"] = store.blobs.put(_npy(np.asarray(result.segments, np.int32)))[0]
    if result.attribution is not None:
        blobs["attribution"] = store.blobs.put(_npy(np.asarray(result.attribution, np.float32)))[0]
    rec = routes(item.id, rec)
    rec["delivered_sha256"], rec["mask_sha256"] = delivered, mask
    return {"delivered_sha256": delivered, "mask_sha256": mask, "blobs": blobs, "result": rec,
            "unsafe": bool(result.unsafe), "fail_closed": bool(result.fail_closed),
            **review_fields(result.models, fail_closed=result.fail_closed, near=near)}


def process_item(sg: Safeguarder, store: Store, item: Item, *, near: float = DEFAULT_NEAR) -> tuple[str, dict[str, Any]]:
    """Safeguard one stored original; returns the job status (``done``/``failed``) and item fields.

    An image that cannot be processed gets the error record ``veil scan`` would write and the
    job fails; a fail-closed result is a normal (``done``) outcome.
    """
    src = store.blobs.path(item.original_sha256)
    extra: dict[str, Any] = {"sha256": item.original_sha256}
    try:
        n_frames = frame_count(src)
        extra["metadata"] = {"found": read_metadata(src).found, "kept": []}
        result = sg.run(src)
    except Exception as exc:  # noqa: BLE001 - a bad input fails its job, never the worker
        msg = str(exc) if isinstance(exc, VeilError) else f"{type(exc).__name__}: {exc}"
        rec = error_record(item.filename, msg, **extra)
        return "failed", {"result": rec, "needs_review": False}
    if n_frames > 1:
        dropped = f"frames 1-{n_frames - 1} of this file are neither judged nor delivered (the service judges the first)"
        result.note = f"{result.note}; {dropped}" if result.note else dropped
    return "done", _store_result(store, item, result, item.filename, extra=extra, near=near)


@dataclass
class Correction:
    """A moderator's mask, applied to the original and judged again."""

    segments: list[int]
    result: Result
    unsafe: bool
    preview: np.ndarray  # what the browser may see: never pixels the delivered image hides


def _saved_mask(store: Store, sha: str, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    with Image.open(store.blobs.path(sha)) as im:
        m = np.asarray(im.convert("L")) > 127
    return m if m.shape == shape else resize(m.astype(np.uint8), shape, nearest=True).astype(bool)


def current_segments(store: Store, item: Item) -> tuple[np.ndarray, list[int]]:
    """The item's label map (search resolution) and the labels its delivered mask covers."""
    blobs = item.blobs or {}
    if "segments" not in blobs or item.mask_sha256 is None:
        raise ConflictError(f"item {item.id} has no regions to correct (it was judged safe, or failed before "
                            "segmentation)")
    labels = load_npy(store.blobs.read(blobs["segments"]))
    mask = _saved_mask(store, item.mask_sha256, labels.shape)
    counts = np.bincount(labels.ravel(), minlength=int(labels.max()) + 1)
    covered = np.bincount(labels.ravel(), weights=mask.ravel(), minlength=counts.size)
    return labels, [int(i) for i in np.nonzero((counts > 0) & (covered > counts / 2))[0]]


def segment_at(labels: np.ndarray, x: float, y: float) -> int:
    """The label under a point given as fractions of width and height."""
    if not (0 <= x <= 1 and 0 <= y <= 1):
        raise InvalidParameterError(f"point ({x}, {y}) must lie in [0, 1] × [0, 1]")
    h, w = labels.shape
    return int(labels[min(h - 1, int(y * h)), min(w - 1, int(x * w))])


def correct(sg: Safeguarder, store: Store, item: Item, segment_ids: list[int], *,
            preview_size: int = 1024) -> Correction:
    """Obfuscate exactly ``segment_ids`` of the original and classify the result again."""
    from veil.counterfactual import describe_regions, region_scores, regions_mask, stylize
    from veil.counterfactual.styles import apply_mask
    from veil.output import overlay_regions
    from veil.segment import resize_labels

    labels, _ = current_segments(store, item)
    ids = sorted({int(i) for i in segment_ids})
    if any(i < 0 or i > int(labels.max()) for i in ids):
        raise InvalidParameterError(f"segments must be labels in 0..{int(labels.max())}, got {ids}")
    if not ids:
        raise InvalidParameterError("a corrected mask needs at least one region (to deliver the image unchanged, "
                                    "overturn the item instead)")
    cfg = sg.config
    image = load_image(store.blobs.path(item.original_sha256), max_pixels=cfg.max_pixels)
    h, w = image.shape[:2]
    work_mask = regions_mask(labels, ids)
    mask = work_mask if work_mask.shape == (h, w) else resize(work_mask.astype(np.uint8), (h, w), nearest=True).astype(bool)
    delivered = apply_mask(image, stylize(image, cfg.style, **cfg.style_options), mask)
    before, after = sg.classify([image, delivered])
    blobs = item.blobs or {}
    attribution = (load_npy(store.blobs.read(blobs["attribution"])) if "attribution" in blobs
                   else np.zeros(labels.shape, np.float32))
    regions = describe_regions(labels, ids, region_scores(attribution, labels))
    for r in regions:
        r.reason = "moderator"
        if labels.shape != (h, w):
            x, y, bw, bh = r.bbox
            lh, lw = labels.shape
            r.bbox = (int(x * w / lw), int(y * h / lh), max(1, round(bw * w / lw)), max(1, round(bh * h / lh)))
    unsafe_after = any(m.unsafe for m in after)
    result = Result(
        unsafe=any(m.unsafe for m in before), scores=sg.flat_scores(before), models=before,
        counterfactual_found=not unsafe_after, depth=len(ids), obfuscated_fraction=float(mask.mean()),
        scores_after=sg.flat_scores(after), models_after=after, fail_closed=False, error=None,
        image=delivered, mask=mask, attribution=attribution, segments=labels, regions=regions,
        seed=cfg.seed, settings={**cfg.to_dict(), "corrected": True},
        note="mask corrected by a moderator",
    )
    # The preview never shows pixels the delivered image hides: regions the moderator un-hides
    # keep their delivered (obscured) pixels, outlined, until the correction is saved.
    shown = load_image(store.blobs.path(item.delivered_sha256 or ""), max_pixels=cfg.max_pixels)
    if shown.shape[:2] != (h, w):
        shown = resize(shown, (h, w))
    old = _saved_mask(store, item.mask_sha256 or "", (h, w))
    preview = np.where((mask & ~old)[..., None], delivered, shown)
    size = fit_within(preview.shape, preview_size)
    small = preview if size == (h, w) else resize(preview, size)
    lab = labels if labels.shape == size else resize_labels(labels, size)
    small_mask = mask if mask.shape == size else resize(mask.astype(np.uint8), size, nearest=True).astype(bool)
    return Correction(ids, result, unsafe_after, overlay_regions(small, lab, small_mask))


def save_correction(store: Store, item: Item, corr: Correction, *, near: float = DEFAULT_NEAR) -> dict[str, Any]:
    """The item fields of a verified correction (blobs written)."""
    if corr.unsafe:
        raise ConflictError("the corrected image is still classified unsafe; hide more regions before saving")
    extra = {k: v for k, v in (item.result or {}).items() if k in ("sha256", "metadata")}
    extra["corrected"] = True
    fields = _store_result(store, item, corr.result, item.filename, extra=extra, near=near)
    fields.pop("needs_review")  # the item stays where the moderator is reviewing it
    return fields
