"""Writing one result to disk: the delivered image, the mask, the overlays and the JSON record.

The ``results.jsonl`` keys written here are a public interface: extend, never rename.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from veil.errors import InvalidParameterError, VeilError
from veil.image import Metadata, fit_within, resize, save_delivered, save_image, save_mask
from veil.types import Result

#: Keys every ``results.jsonl`` record carries, in this order.
RECORD_KEYS = (
    "path", "unsafe", "scores", "counterfactual_found", "depth", "obfuscated_fraction",
    "scores_after", "output", "mask", "fail_closed", "error",
)



def is_uri(out: str | Path) -> bool:
    """``s3://…``, ``gs://…``, ``file://…``: an output location for :mod:`pyarrow.fs`, not a plain path.

    Examples
    --------
    >>> is_uri("s3://bucket/out"), is_uri("out/dir")
    (True, False)
    """
    return isinstance(out, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", out) is not None

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


# -- sinks: where a scan's outcomes go (the driver alone writes them) ---------------------------

#: Output formats of ``veil scan --format``.
FORMATS: tuple[str, ...] = ("folder", "parquet")

DoneIndex = dict[str, set[tuple[str, str]]]
"""``path → {(sha256, settings_hash)}`` of inputs whose records are complete."""


def _complete_groups(records: Sequence[dict[str, Any]], max_frames: int) -> tuple[DoneIndex, set[tuple[str, str, str]]]:
    """Which inputs' records are all there: one record, or one per judged frame.

    Returns the done index and the keys of incomplete groups (a crash between the frames of
    one multi-frame file cannot happen with whole-file appends, but a damaged file is read
    defensively).
    """
    frames: dict[tuple[str, str, str], set[int]] = {}
    expected: dict[tuple[str, str, str], int] = {}
    for rec in records:
        sha, sh = rec.get("sha256"), rec.get("settings_hash")
        if not isinstance(sha, str) or not isinstance(sh, str):
            continue  # no content hash (the file could not be read): never counts as done
        key = (str(rec.get("path")), sha, sh)
        if rec.get("frame") is None:
            frames.setdefault(key, set()).add(0)
            expected[key] = 1
        else:
            frames.setdefault(key, set()).add(int(rec["frame"]))
            expected[key] = min(int(rec.get("n_frames") or 1), max_frames)
    done: DoneIndex = {}
    broken: set[tuple[str, str, str]] = set()
    for key, got in frames.items():
        if got >= set(range(expected[key])):
            done.setdefault(key[0], set()).add(key[1:])
        else:
            broken.add(key)
    return done, broken


class ResumeError(VeilError, ValueError):
    """``--resume`` was asked for on an output written with other settings."""


def _check_settings(records: Sequence[dict[str, Any]], settings_hash: str | None, where: str | Path) -> None:
    if settings_hash is None:
        return
    other = sorted({str(r.get("settings_hash")) for r in records if r.get("settings_hash") != settings_hash})
    if other:
        raise ResumeError(
            f"--resume: {str(where)!r} holds records made with other settings (settings_hash {', '.join(other)}; "
            f"this run's is {settings_hash}); resume with the settings of the first run, or write to a new --out"
        )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _put_file(root: Path, rel: str, data: bytes) -> None:
    final = root / rel
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(final.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, final)


class FolderSink:
    """Today's layout: files under ``out`` and one ``results.jsonl`` line per record.

    Files are written under a temporary name and renamed before their records; the records
    of one input are appended with one ``write`` and ``fsync`` ed, so after a crash
    ``results.jsonl`` ends with complete records, or with a partial last line that
    :meth:`load` ignores and cuts off — it never holds a half-written record that counts as done.

    Parameters
    ----------
    resume : bool
        Keep ``results.jsonl`` and report what it holds (:attr:`done`); otherwise start it afresh.
    max_frames : int
        Frames judged per file (a multi-frame file is done when all its frames' records are there).
    fsync : bool
        ``fsync`` after every input (the default; off only for throw-away runs).
    """

    format = "folder"

    def write_text(self, name: str, text: str) -> str:
        """Write a small text file (``run.json``) into the output folder; returns its path."""
        (self.out / name).write_text(text)
        return str(self.out / name)

    def __init__(self, out: str | Path, *, resume: bool = False, max_frames: int = 64, fsync: bool = True,
                 settings_hash: str | None = None) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.results = self.out / "results.jsonl"
        self.fsync = fsync
        self.done: DoneIndex = {}
        if resume and self.results.exists():
            self.done = self._load(max_frames, settings_hash)
        elif self.results.exists():
            self.results.unlink()
        self._fd = os.open(self.results, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _load(self, max_frames: int, settings_hash: str | None) -> DoneIndex:
        raw = self.results.read_bytes()
        end = raw.rfind(b"\n") + 1  # a partial trailing line (a crash mid-write) is dropped
        records: list[dict[str, Any]] = []
        for line in raw[:end].splitlines():
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a damaged line never counts as done
        _check_settings(records, settings_hash, self.results)
        done, broken = _complete_groups(records, max_frames)
        if end != len(raw) or broken or len(records) != raw[:end].count(b"\n"):
            keep = [r for r in records
                    if (str(r.get("path")), r.get("sha256"), r.get("settings_hash")) not in broken]
            tmp = self.results.with_name("results.jsonl.part")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
            os.replace(tmp, self.results)
        return done

    def put(self, records: Sequence[dict[str, Any]], files: dict[str, bytes]) -> None:
        """Write one input's files, then append its records atomically."""
        for rel, data in files.items():
            _put_file(self.out, rel, data)
        if records:
            _write_all(self._fd, "".join(json.dumps(r) + "\n" for r in records).encode())
            if self.fsync:
                os.fsync(self._fd)

    def records(self) -> list[dict[str, Any]]:
        """Every record in ``results.jsonl`` (this run's and, when resumed, the earlier ones)."""
        with open(self.results, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


#: Columns of the Parquet output, besides ``record`` (the full JSON record).
PARQUET_COLUMNS = ("path", "sha256", "settings_hash", "frame", "n_frames", "unsafe", "fail_closed", "error",
                   "output", "record", "image", "mask", "overlay_attribution", "overlay_regions")


class ParquetSink:
    """Records and delivered images as Parquet: ``out/results/part-NNNNN.parquet``, one row per record.

    A row holds the record's main keys as columns, the whole record as JSON (``record``, the
    ``results.jsonl`` line) and the delivered PNG, mask PNG and overlays as bytes. Rows are
    buffered and written as a new part (temporary name, then renamed) every ``rows_per_part``
    rows or ``max_buffer_bytes`` bytes; a crash loses only the buffered rows, which a resumed
    run redoes. Needs ``pyarrow`` (``pip install 'veil[bench]'``).
    """

    format = "parquet"

    def __init__(self, out: str | Path, *, resume: bool = False, max_frames: int = 64, rows_per_part: int = 256,
                 max_buffer_bytes: int = 256 << 20, settings_hash: str | None = None) -> None:
        from veil.errors import require

        self.pa: Any = require("pyarrow", "bench")
        self.pq: Any = require("pyarrow.parquet", "bench")
        self.rows_per_part = rows_per_part
        self.max_buffer_bytes = max_buffer_bytes
        self._rows: list[dict[str, Any]] = []
        self._bytes = 0
        #: An object store (``s3://``, ``gs://`` …, through :mod:`pyarrow.fs`), else a local folder.
        self.fs: Any = None
        if is_uri(out):  # file:// too: the same code path as s3:// or gs://
            fs_mod: Any = require("pyarrow.fs", "bench")
            self.fs, root = fs_mod.FileSystem.from_uri(str(out))
            self.location = str(out).rstrip("/")
            self.out = Path(root)  # the path inside the store
            self._root = root.rstrip("/")
            self._dir = f"{self._root}/results"
            self.fs.create_dir(self._dir, recursive=True)
        else:
            self.out = Path(out)
            self.location = str(self.out)
        self.dir = self.out / "results"
        if self.fs is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            for p in self.dir.glob("*.parquet.part"):
                p.unlink()
        elif self.fs.type_name == "local":
            for p in self.parts(suffix=".parquet.part"):
                self.fs.delete_file(p)
        parts = self.parts()
        if not resume:
            for p in parts:
                self._delete(p)
            parts = []
        self._next = 1 + max((int(Path(p).stem.split("-")[1]) for p in parts), default=-1)
        self.done: DoneIndex = {}
        if parts:
            records = self.records()
            _check_settings(records, settings_hash, f"{self.location}/results")
            self.done, _ = _complete_groups(records, max_frames)

    def parts(self, suffix: str = ".parquet") -> list[Any]:
        """The written parts, in order (local paths, or paths inside the object store)."""
        if self.fs is None:
            return sorted(self.dir.glob(f"part-*{suffix}"))
        from pyarrow.fs import FileSelector, FileType

        infos = self.fs.get_file_info(FileSelector(self._dir, allow_not_found=True))
        return sorted(i.path for i in infos if i.type == FileType.File
                      and i.base_name.startswith("part-") and i.base_name.endswith(suffix))

    def _delete(self, part: Any) -> None:
        if self.fs is None:
            Path(part).unlink()
        else:
            self.fs.delete_file(part)

    def write_text(self, name: str, text: str) -> str:
        """Write a small text file (``run.json``) beside ``results/``; returns where it went."""
        if self.fs is None:
            (self.out / name).write_text(text)
            return str(self.out / name)
        with self.fs.open_output_stream(f"{self._root}/{name}") as fh:
            fh.write(text.encode())
        return f"{self.location}/{name}"

    def put(self, records: Sequence[dict[str, Any]], files: dict[str, bytes]) -> None:
        for rec in records:
            ov = rec.get("overlays") or {}
            row = {k: rec.get(k) for k in PARQUET_COLUMNS[:9]}
            row.update(record=json.dumps(rec), image=files.get(rec.get("output") or ""),
                       mask=files.get(rec.get("mask") or ""),
                       overlay_attribution=files.get(ov.get("attribution", "")),
                       overlay_regions=files.get(ov.get("regions", "")))
            self._bytes += sum(len(row[k] or b"") for k in ("image", "mask", "overlay_attribution", "overlay_regions"))
            self._rows.append(row)
        if len(self._rows) >= self.rows_per_part or self._bytes >= self.max_buffer_bytes:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        pa = self.pa
        schema = pa.schema([("path", pa.string()), ("sha256", pa.string()), ("settings_hash", pa.string()),
                            ("frame", pa.int32()), ("n_frames", pa.int32()), ("unsafe", pa.bool_()),
                            ("fail_closed", pa.bool_()), ("error", pa.string()), ("output", pa.string()),
                            ("record", pa.string()), ("image", pa.binary()), ("mask", pa.binary()),
                            ("overlay_attribution", pa.binary()), ("overlay_regions", pa.binary())])
        table = pa.Table.from_pylist(self._rows, schema=schema)
        if self.fs is not None:
            final_key = f"{self._dir}/part-{self._next:05d}.parquet"
            if self.fs.type_name == "local":  # a file can be seen half-written: a temporary name, then a rename
                self.pq.write_table(table, final_key + ".part", filesystem=self.fs)
                self.fs.move(final_key + ".part", final_key)
            else:  # an object appears only once its upload has completed
                self.pq.write_table(table, final_key, filesystem=self.fs)
        else:
            final = self.dir / f"part-{self._next:05d}.parquet"
            tmp = final.with_name(final.name + ".part")
            self.pq.write_table(table, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        self._next += 1
        self._rows, self._bytes = [], 0

    def records(self) -> list[dict[str, Any]]:
        """Every record in the written parts."""
        out: list[dict[str, Any]] = []
        for p in self.parts():
            table = self.pq.read_table(p, columns=["record"], filesystem=self.fs)
            out.extend(json.loads(s) for s in table.column("record").to_pylist())
        return out

    def close(self) -> None:
        self.flush()


def make_sink(format: str, out: str | Path, *, resume: bool = False, max_frames: int = 64,
              settings_hash: str | None = None) -> FolderSink | ParquetSink:
    """The sink for ``--format`` (``folder`` or ``parquet``).

    With ``resume`` and a ``settings_hash``, an output holding records of other settings is
    refused (:class:`ResumeError`): their files would be overwritten under the same names.
    """
    if format == "folder":
        if is_uri(out) and not str(out).startswith("file://"):
            raise InvalidParameterError(
                f"--out {out} is an object-store URI: use --format parquet there (the folder layout needs a "
                "local or mounted folder)")
        return FolderSink(str(out)[len("file://"):] if str(out).startswith("file://") else out, resume=resume,
                          max_frames=max_frames, settings_hash=settings_hash)
    if format == "parquet":
        return ParquetSink(out, resume=resume, max_frames=max_frames, settings_hash=settings_hash)

    raise InvalidParameterError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
