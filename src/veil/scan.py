"""One input file through the pipeline and onto disk: the unit of work of ``veil scan``.

A file is judged frame by frame (animations, multi-page TIFF, MPO), each frame delivered as its
own PNG re-encoded from the judged pixels, with one record each. Files that are not images,
and images that cannot be decoded, get an error record, so nothing in a scanned folder goes
unaccounted for. Batch engines (:mod:`veil.engines`) call :func:`scan_file` and only move records;
:func:`veil.engines.run.run_scan` runs an engine over a scan's inputs.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from veil.errors import NotAnImageError, VeilError
from veil.image import DEFAULT_MAX_FRAMES, frame_count, read_metadata, sha256_file
from veil.output import ResultWriter, error_record
from veil.pipeline import SafeguardConfig, Safeguarder


@dataclass
class ScanCounts:
    """What a scan did, for its summary line."""

    files: int = 0
    images: int = 0
    unsafe: int = 0
    fail_closed: int = 0
    skipped: int = 0
    failed: int = 0

    def add(self, rec: dict[str, Any]) -> None:
        if rec.get("output") is not None:
            self.images += 1
            self.unsafe += bool(rec.get("unsafe"))
            self.fail_closed += bool(rec.get("fail_closed"))
        elif rec.get("skipped"):
            self.skipped += 1
        else:
            self.failed += 1

    def summary(self) -> str:
        parts = [f"{self.files} files", f"{self.images} images", f"{self.unsafe} unsafe",
                 f"{self.fail_closed} fully obscured", f"{self.skipped} skipped (not images)",
                 f"{self.failed} failed"]
        return " · ".join(parts)


def settings_hash(config: SafeguardConfig, *, max_frames: int = DEFAULT_MAX_FRAMES,
                  keep_metadata: bool = False, overlays: bool = True) -> str:
    """A short hash of everything that decides a record and the delivered files.

    ``veil scan --resume`` skips an input only when its record carries this hash: the same
    settings (every :class:`~veil.pipeline.SafeguardConfig` field, ``max_frames``,
    ``keep_metadata``, ``overlays``) and the same model cards — a card given as a file is
    hashed by content, so retraining a model into the same path is a new setting.

    Examples
    --------
    >>> from veil.pipeline import SafeguardConfig
    >>> len(settings_hash(SafeguardConfig(models=("nudenet",))))
    16
    """
    d = config.to_dict()
    models: list[Any] = []
    for m in config.models:  # a card given as a file counts by content, not by how its path was spelled
        p = Path(m) if isinstance(m, (str, Path)) else None
        if p is not None and p.is_file():
            weights = _card_weights(p)
            models.append([sha256_file(p), sha256_file(weights) if weights is not None else None])
        else:
            models.append(m if isinstance(m, str) else getattr(m, "name", type(m).__name__))
    d["models"] = models
    payload = {"config": d, "max_frames": int(max_frames),
               "keep_metadata": bool(keep_metadata), "overlays": bool(overlays)}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _card_weights(card: Path) -> Path | None:
    """The weights file a JSON model card names (``weights``), when it exists."""
    try:
        spec = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    w = spec.get("weights") if isinstance(spec, dict) else None
    if not isinstance(w, str):
        return None
    p = Path(w) if Path(w).is_absolute() else card.parent / w
    return p if p.is_file() else None


def _message(exc: Exception) -> str:
    return str(exc) if isinstance(exc, VeilError) else f"{type(exc).__name__}: {exc}"


class Deferred:
    """A record that a background writer is still producing (see :class:`BackgroundWriter`)."""

    def __init__(self, future: Future[dict[str, Any]]) -> None:
        self.future = future

    def get(self) -> dict[str, Any]:
        return self.future.result()


class BackgroundWriter:
    """Writes results on one background thread while the next image is safeguarded.

    PNG encoding (zlib) and the overlays release the GIL, so on a machine whose cores the
    models do not fill this hides most of the writing. Results waiting to be written are
    bounded by their pixels (``max_pending_pixels``), so large images are not held twice.
    Records come back in submission order; a write that fails gives an error record.
    """

    def __init__(self, writer: ResultWriter, *, max_pending_pixels: int = 8_000_000) -> None:
        self.writer = writer
        self.max_pending_pixels = max_pending_pixels
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="veil-writer")
        self._pending: deque[tuple[Future[dict[str, Any]], int]] = deque()

    def submit(self, result: Any, stem: PurePosixPath, path: str, extra: dict[str, Any], *,
               metadata: Any = None, note: str | None = None) -> Deferred:
        pixels = int(result.mask.size)
        while self._pending and sum(p for _, p in self._pending) + pixels > self.max_pending_pixels:
            self._pending.popleft()[0].result()  # wait: the oldest write frees its images
        future = self._pool.submit(_write_one, self.writer, result, stem, path, extra, metadata, note)
        self._pending.append((future, pixels))
        while self._pending and self._pending[0][0].done():
            self._pending.popleft()
        return Deferred(future)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _write_one(writer: ResultWriter, result: Any, stem: PurePosixPath, path: str, extra: dict[str, Any],
               metadata: Any, note: str | None) -> dict[str, Any]:
    try:
        rec = writer.write(result, stem, path, metadata=metadata)
    except Exception as exc:  # noqa: BLE001 - one bad output never stops a batch
        return error_record(path, _message(exc), **extra)
    rec.update(extra)
    if note:
        rec["note"] = f"{rec['note']}; {note}" if rec.get("note") else note
    return rec


def scan_file(sg: Safeguarder, source: Path | bytes, stem: PurePosixPath, writer: ResultWriter | BackgroundWriter, *,
              display_path: str | None = None, max_frames: int = DEFAULT_MAX_FRAMES,
              keep_metadata: bool = False) -> list[dict[str, Any] | Deferred]:
    """Safeguard every frame of one file and write what was delivered; one record per frame.

    With a :class:`BackgroundWriter` the written frames come back as :class:`Deferred` records
    (``.get()`` waits for them). Never raises for a bad input: a file that is not an image gives one record with
    ``skipped: true``; one that fails to decode, or any unexpected error, gives an error record
    and nothing delivered. Every record carries the SHA-256 of the original file.

    Parameters
    ----------
    source : Path or bytes
        The file, or its bytes (a row of a Parquet input); ``display_path`` names the latter.
    stem : PurePosixPath
        Output name without extension (from :func:`veil.output.plan_names`); frames after the
        first of a multi-frame file are written as ``stem@k``.
    max_frames : int
        Frames judged per file; later ones are neither judged nor delivered (noted in the records).
    keep_metadata : bool
        Carry EXIF (without its thumbnail), ICC and XMP into the delivered PNG. Off by default:
        GPS positions, maker notes and thumbnails never leave unless asked for.
    """
    path = display_path or (str(source) if isinstance(source, Path) else "<bytes>")
    try:
        digest = sha256_file(source) if isinstance(source, Path) else hashlib.sha256(source).hexdigest()
    except OSError as exc:
        return [error_record(path, f"cannot read file: {exc}")]
    try:
        n_frames = frame_count(source)
        metadata = read_metadata(source)
    except NotAnImageError as exc:
        return [error_record(path, str(exc), skipped=True, sha256=digest)]
    except Exception as exc:  # noqa: BLE001 - one bad input never stops a batch
        return [error_record(path, _message(exc), sha256=digest)]
    n = min(n_frames, max_frames)
    keep = metadata if keep_metadata else None
    found = {"found": metadata.found, "kept": []}
    dropped = (f"frames {n}-{n_frames - 1} of this file exceed --max-frames {max_frames}: not judged, not delivered"
               if n < n_frames else None)
    records: list[dict[str, Any] | Deferred] = []
    for k in range(n):
        extra: dict[str, Any] = {"sha256": digest}
        if n_frames > 1:
            extra.update(frame=k, n_frames=n_frames)
        if not keep_metadata:
            extra["metadata"] = found
        try:
            result = sg.run(source, frame=k)
        except Exception as exc:  # noqa: BLE001 - one bad input never stops a batch
            records.append(error_record(path, _message(exc), **extra))
            continue
        name = stem if k == 0 else stem.with_name(f"{stem.name}@{k}")
        if isinstance(writer, BackgroundWriter):
            records.append(writer.submit(result, name, path, extra, metadata=keep, note=dropped))
        else:
            records.append(_write_one(writer, result, name, path, extra, keep, dropped))
    return records
