"""Local benchmark datasets: ImageFolder trees, CSV/JSONL manifests and the UnsafeBench layout.

Every layout becomes a :class:`BenchDataset`: a list of :class:`Sample` s, each with a
lazy image loader, a binary label (``1`` unsafe, ``0`` safe), an optional category
(a :mod:`veil.taxonomy` key when the name is known), an optional source
(``"Laion5B"``, ``"Lexica"`` …) and an optional ground-truth mask path. Nothing is
downloaded.

Layouts (``layout=None`` detects them):

``imagefolder``
    One folder per class: ``safe/``, ``unsafe/`` or category names (``sexual/``,
    ``violence/`` → unsafe with that category; ``neutral/``, ``normal/`` → safe).
    A two-level tree ``<category>/{safe,unsafe}/`` is read too.
``manifest``
    A ``.csv`` or ``.jsonl`` file with columns ``image`` and ``label`` and optional
    ``category``, ``source`` and ``mask``; relative paths are resolved against the
    manifest's folder.
``unsafebench``
    Parquet files or a Hugging Face ``datasets`` folder written by ``save_to_disk``
    (``*.arrow`` + ``state.json``/``dataset_info.json``, or a ``dataset_dict.json``
    with one folder per split) holding the columns ``image`` (bytes, a path or a
    ``{bytes, path}`` struct), ``safety_label`` (``"Safe"``/``"Unsafe"``, 0/1 or a
    ``ClassLabel``), ``category`` and ``source``. Read with ``pyarrow`` alone.

Images are decoded only when a benchmark asks for them: an unreadable image raises
:class:`~veil.errors.InvalidImageError` from :meth:`Sample.load`, which the
benchmarks count and report while the run goes on.

Examples
--------
>>> ds = load_dataset("data/unsafebench")  # doctest: +SKIP
>>> ds.layout, len(ds), ds.categories()[:2]  # doctest: +SKIP
('unsafebench', 8100, ['deception', 'harassment'])
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from veil.errors import InvalidImageError, InvalidParameterError, VeilError, require
from veil.image import IMAGE_EXTENSIONS, load_image, resize
from veil.taxonomy import SAFE_LABELS, get_category, normalize_category
from veil.training.data import read_csv, read_jsonl

__all__ = [
    "LAYOUTS",
    "BenchDataset",
    "DatasetError",
    "Sample",
    "detect_layout",
    "load_dataset",
    "load_image_folder",
    "load_manifest",
    "load_mask",
    "load_unsafebench",
    "parse_label",
    "source_kind",
]

#: Layout names :func:`load_dataset` accepts.
LAYOUTS: tuple[str, ...] = ("imagefolder", "manifest", "unsafebench")

_UNSAFE_NAMES = frozenset({"unsafe", "nsfw", "1", "true", "yes", "positive", "inappropriate"})
# Safe label names are the taxonomy's one list; the rest are how datasets write "not unsafe".
_SAFE_NAMES = SAFE_LABELS | frozenset({"0", "false", "no", "not_unsafe", "non_inappropriate"})
# Lower-cased source names (or fragments) of AI-generated images; UnsafeBench's are Lexica.
_AI_SOURCES = ("lexica", "midjourney", "stable_diffusion", "stablediffusion", "sdxl", "dall",
               "generated", "synthetic", "diffusion", "ai")
_REAL_SOURCES = ("laion", "real", "photo", "web", "coco", "imagenet")


class DatasetError(VeilError, ValueError):
    """A dataset is missing, of an unknown layout, or lacks / malforms a required column."""


@dataclass(frozen=True)
class Sample:
    """One benchmark item.

    Attributes
    ----------
    id : str
        A stable identifier (a relative path or ``file#row``), used in reports.
    label : int
        ``1`` unsafe, ``0`` safe.
    category : str or None
        A :mod:`veil.taxonomy` key when the dataset's name is known, else the
        normalized name; ``None`` when the dataset has none.
    source : str or None
        Where the image comes from (``"Laion5B"``, ``"Lexica"``); see :func:`source_kind`.
    mask_path : str or None
        Ground-truth mask of the unsafe region (non-zero pixels), if any.
    """

    id: str
    label: int
    category: str | None
    source: str | None
    mask_path: str | None
    loader: Callable[[], np.ndarray] = field(repr=False, compare=False)

    def load(self) -> np.ndarray:
        """Decode the image as H×W×3 ``uint8``; raises :class:`InvalidImageError` when unreadable."""
        return self.loader()

    def load_mask(self, shape: tuple[int, int] | None = None) -> np.ndarray | None:
        """The ground-truth mask as H×W ``bool`` (resized to ``shape``), or ``None`` without one."""
        return None if self.mask_path is None else load_mask(self.mask_path, shape)


@dataclass(frozen=True)
class BenchDataset:
    """A list of :class:`Sample` s with where they came from.

    Examples
    --------
    >>> ds = BenchDataset("toy", "manifest", [])
    >>> len(ds)
    0
    """

    name: str
    layout: str
    samples: list[Sample]
    root: str = ""

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)

    def categories(self) -> list[str]:
        """Sorted category names present (``None`` left out)."""
        return sorted({s.category for s in self.samples if s.category is not None})

    def sources(self) -> list[str]:
        """Sorted source names present (``None`` left out)."""
        return sorted({s.source for s in self.samples if s.source is not None})

    def head(self, limit: int | None) -> BenchDataset:
        """The first ``limit`` samples (all when ``None``)."""
        if limit is None:
            return self
        if limit < 1:
            raise InvalidParameterError(f"limit must be at least 1, got {limit}; or leave it out")
        return replace(self, samples=self.samples[:limit])

    def summary(self) -> dict[str, Any]:
        """Counts per label, category and source, for reports."""
        def count(values: Sequence[Any]) -> dict[str, int]:
            out: dict[str, int] = {}
            for v in values:
                out[str(v)] = out.get(str(v), 0) + 1
            return dict(sorted(out.items()))

        return {
            "name": self.name, "layout": self.layout, "root": self.root, "n": len(self),
            "unsafe": int(sum(s.label for s in self.samples)),
            "safe": int(sum(1 - s.label for s in self.samples)),
            "categories": count([s.category for s in self.samples]),
            "sources": count([s.source for s in self.samples]),
            "with_mask": int(sum(s.mask_path is not None for s in self.samples)),
        }


# -- value parsing ---------------------------------------------------------------------------------

def parse_label(value: Any, *, where: str = "label") -> int:
    """``1`` for unsafe, ``0`` for safe; accepts 0/1, booleans and names like ``"Unsafe"``.

    Raises
    ------
    DatasetError
        For anything else, naming ``where`` and the value.

    Examples
    --------
    >>> parse_label("Unsafe"), parse_label(0), parse_label("neutral")
    (1, 0, 0)
    """
    if isinstance(value, (bool, np.bool_)):
        return int(bool(value))
    if isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value) in (0.0, 1.0):
        return int(value)
    if isinstance(value, str):
        norm = normalize_category(value)
        if norm in _UNSAFE_NAMES:
            return 1
        if norm in _SAFE_NAMES:
            return 0
    raise DatasetError(
        f"{where}: cannot read {value!r} as a safety label; use 'safe'/'unsafe' or 0/1 (1 = unsafe)"
    )


def _category(value: Any) -> str | None:
    """A taxonomy key when the name is known, else the normalized name; None for empty."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        return get_category(text).key
    except VeilError:
        return normalize_category(text)


def _source(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def source_kind(source: str | None) -> str:
    """``"ai_generated"``, ``"real"`` or ``"unknown"`` for a source name.

    Examples
    --------
    >>> source_kind("Lexica"), source_kind("Laion5B"), source_kind(None)
    ('ai_generated', 'real', 'unknown')
    """
    if not source:
        return "unknown"
    norm = normalize_category(source)
    if norm in ("ai_generated", "real"):
        return norm
    if any(norm.startswith(p) or p in norm.split("_") for p in _REAL_SOURCES):
        return "real"
    if any(p in norm if len(p) > 2 else p in norm.split("_") for p in _AI_SOURCES):
        return "ai_generated"
    return "unknown"


def load_mask(path: str | os.PathLike[str], shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask image as H×W ``bool`` (non-zero pixels are True), resized to ``shape``.

    Raises
    ------
    InvalidImageError
        When the file cannot be decoded.
    """
    arr = load_image(str(path)).max(axis=2) > 0
    if shape is not None and arr.shape != tuple(shape[:2]):
        arr = resize(arr.astype(np.float32), (int(shape[0]), int(shape[1])), nearest=True) > 0.5
    return arr


# -- layouts ---------------------------------------------------------------------------------------

def _file_loader(path: Path) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        return load_image(str(path))

    return load


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS


def _folder_meaning(name: str) -> tuple[int, str | None]:
    """(label, category) a class folder's name stands for."""
    norm = normalize_category(name)
    if norm in _SAFE_NAMES:
        return 0, None
    if norm in _UNSAFE_NAMES:
        return 1, None
    return 1, _category(name)


def load_image_folder(path: str | os.PathLike[str]) -> BenchDataset:
    """Read a class-per-folder tree (see the module docstring for folder names).

    Raises
    ------
    DatasetError
        When ``path`` is not a folder or holds no class folder with images.

    Examples
    --------
    >>> ds = load_image_folder("data/tiny")  # doctest: +SKIP
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"dataset {str(root)!r} is not a folder; pass an ImageFolder root")
    samples: list[Sample] = []
    for cls_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        subs = {normalize_category(p.name): p for p in cls_dir.iterdir() if p.is_dir()}
        nested = [k for k in subs if k in _SAFE_NAMES or k in _UNSAFE_NAMES]
        if nested:  # <category>/{safe,unsafe}/
            category = _category(cls_dir.name)
            for key in sorted(nested):
                label = 1 if key in _UNSAFE_NAMES else 0
                for f in sorted(subs[key].rglob("*")):
                    if _is_image(f):
                        samples.append(Sample(str(f.relative_to(root)), label, category, None, None,
                                              _file_loader(f)))
            continue
        label, category = _folder_meaning(cls_dir.name)
        for f in sorted(cls_dir.rglob("*")):
            if _is_image(f):
                samples.append(Sample(str(f.relative_to(root)), label, category, None, None,
                                      _file_loader(f)))
    if not samples:
        raise DatasetError(
            f"dataset {str(root)!r} has no class folders with images ({', '.join(IMAGE_EXTENSIONS)}); "
            "expected e.g. safe/*.jpg and unsafe/*.jpg"
        )
    return BenchDataset(root.name, "imagefolder", samples, str(root))


def _manifest_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return [row for _, row in read_jsonl(path, error=DatasetError)]
    return [row for _, row in read_csv(path, error=DatasetError)]


def load_manifest(path: str | os.PathLike[str]) -> BenchDataset:
    """Read a ``.csv`` or ``.jsonl`` manifest with ``image``, ``label`` [, ``category``, ``source``, ``mask``].

    Raises
    ------
    DatasetError
        When the file is missing, empty, lacks a required column or has an unreadable label.

    Examples
    --------
    >>> ds = load_manifest("data/manifest.csv")  # doctest: +SKIP
    """
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"manifest {str(p)!r} does not exist; pass a .csv or .jsonl file")
    rows = _manifest_rows(p)
    if not rows:
        raise DatasetError(f"manifest {str(p)!r} has no rows; add lines with image,label")
    for col in ("image", "label"):
        if not all(col in r and r[col] not in (None, "") for r in rows):
            bad = next(i for i, r in enumerate(rows, 1) if r.get(col) in (None, ""))
            raise DatasetError(
                f"manifest {str(p)!r}: column {col!r} is missing or empty (first at row {bad}); "
                "required columns: image, label; optional: category, source, mask"
            )
    samples = []
    for i, r in enumerate(rows, 1):
        img = Path(str(r["image"]))
        img = img if img.is_absolute() else p.parent / img
        mask = r.get("mask")
        mask_path = None
        if mask not in (None, ""):
            m = Path(str(mask))
            mask_path = str(m if m.is_absolute() else p.parent / m)
        samples.append(Sample(
            str(r["image"]), parse_label(r["label"], where=f"manifest {str(p)!r} row {i}, column 'label'"),
            _category(r.get("category")), _source(r.get("source")), mask_path, _file_loader(img),
        ))
    return BenchDataset(p.stem, "manifest", samples, str(p))


def _bytes_loader(data: bytes) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        return load_image(data)

    return load


def _broken_loader(message: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        raise InvalidImageError(message)

    return load


def _arrow_files(root: Path) -> list[tuple[str, Path]]:
    """(split, file) pairs of a ``save_to_disk`` folder (Dataset or DatasetDict)."""
    dd = root / "dataset_dict.json"
    if dd.is_file():
        try:
            splits = json.loads(dd.read_text(encoding="utf-8"))["splits"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DatasetError(f"{str(dd)!r} is malformed ({exc}); expected {{\"splits\": [...]}}") from exc
        return [(s, f) for s in splits for _, f in _arrow_files(root / s)]
    state = root / "state.json"
    files: list[Path] = []
    if state.is_file():
        try:
            names = [d["filename"] for d in json.loads(state.read_text(encoding="utf-8"))["_data_files"]]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DatasetError(f"{str(state)!r} is malformed ({exc}); expected a datasets "
                               "save_to_disk state.json with '_data_files'") from exc
        files = [root / n for n in names]
    else:
        files = sorted(root.glob("*.arrow"))
    return [(root.name, f) for f in files]


def _class_names(root: Path, column: str) -> list[str] | None:
    """ClassLabel names of ``column`` from a save_to_disk ``dataset_info.json``."""
    info = root / "dataset_info.json"
    if not info.is_file():
        return None
    try:
        feat = json.loads(info.read_text(encoding="utf-8")).get("features", {}).get(column, {})
    except json.JSONDecodeError:
        return None
    names = feat.get("names") if isinstance(feat, dict) else None
    return list(names) if isinstance(names, list) else None


def _read_arrow(pa: Any, f: Path) -> Any:
    """One ``.arrow`` file as a table (``save_to_disk`` writes the stream format; accept the file format too)."""
    if not f.is_file():
        raise DatasetError(f"arrow file {str(f)!r} does not exist")
    try:
        with pa.memory_map(str(f)) as src:
            try:
                return pa.ipc.open_stream(src).read_all()
            except pa.ArrowInvalid:
                src.seek(0)
                return pa.ipc.open_file(src).read_all()
    except (OSError, pa.ArrowInvalid) as exc:
        raise DatasetError(f"cannot read arrow file {str(f)!r}: {exc}") from exc


def _read_tables(root: Path) -> list[tuple[str, Any, Path | None]]:
    """(file label, pyarrow table, folder of its ``dataset_info.json`` or None) for a parquet / arrow dataset."""
    pa: Any = require("pyarrow", "bench")
    require("pyarrow.parquet", "bench")
    if root.is_file() and root.suffix.lower() == ".arrow":
        return [(root.name, _read_arrow(pa, root), root.parent)]
    files = [root] if root.is_file() else sorted(root.rglob("*.parquet"))
    if files:
        out: list[tuple[str, Any, Path | None]] = []
        for f in files:
            try:
                out.append((f.name if f == root else str(f.relative_to(root)), pa.parquet.read_table(f), None))
            except (OSError, pa.ArrowInvalid) as exc:
                raise DatasetError(f"cannot read parquet file {str(f)!r}: {exc}") from exc
        return out
    return [(str(f.relative_to(root)), _read_arrow(pa, f), f.parent) for _split, f in _arrow_files(root)]


def _image_loader(value: Any, where: str, base: Path) -> Callable[[], np.ndarray]:
    """A loader for an ``image`` cell: bytes, a path, or a ``{bytes, path}`` struct."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return _bytes_loader(bytes(value["bytes"]))
        value = value.get("path")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _bytes_loader(bytes(value))
    if isinstance(value, str) and value:
        p = Path(value)
        return _file_loader(p if p.is_absolute() else base / p)
    return _broken_loader(f"{where}: image cell holds no bytes or path ({type(value).__name__})")


def load_unsafebench(path: str | os.PathLike[str]) -> BenchDataset:
    """Read the UnsafeBench layout: parquet files or a ``save_to_disk`` folder (see module docs).

    Raises
    ------
    DatasetError
        No parquet/arrow files, or a missing ``image`` / ``safety_label`` column.
    MissingDependencyError
        Without ``pyarrow``.

    Examples
    --------
    >>> ds = load_unsafebench("data/UnsafeBench")  # doctest: +SKIP
    >>> ds.samples[0].source  # doctest: +SKIP
    'Laion5B'
    """
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"dataset {str(root)!r} does not exist")
    tables = _read_tables(root)
    if not tables:
        raise DatasetError(f"dataset {str(root)!r} holds no .parquet or .arrow files; "
                           "pass a folder of UnsafeBench parquet files or a save_to_disk folder")
    base = root if root.is_dir() else root.parent
    samples: list[Sample] = []
    for fname, table, info_dir in tables:
        cols = list(table.column_names)
        label_col = "safety_label" if "safety_label" in cols else ("label" if "label" in cols else None)
        missing = [c for c, ok in (("image", "image" in cols), ("safety_label", label_col)) if not ok]
        if missing:
            raise DatasetError(
                f"{fname!r}: missing column(s) {missing}; found {cols}; the UnsafeBench layout needs "
                "'image' and 'safety_label' (optional 'category', 'source')"
            )
        names = _class_names(info_dir, label_col) if info_dir is not None and label_col else None
        images = table.column("image").to_pylist()
        labels = table.column(label_col).to_pylist()
        cats = table.column("category").to_pylist() if "category" in cols else [None] * len(images)
        srcs = table.column("source").to_pylist() if "source" in cols else [None] * len(images)
        for i, (img, lab, cat, src) in enumerate(zip(images, labels, cats, srcs, strict=True)):
            where = f"{fname}#{i}"
            if names is not None and isinstance(lab, int) and 0 <= lab < len(names):
                lab = names[lab]
            samples.append(Sample(where, parse_label(lab, where=f"{where}, column {label_col!r}"),
                                  _category(cat), _source(src), None, _image_loader(img, where, base)))
    return BenchDataset(root.stem if root.is_file() else root.name, "unsafebench", samples, str(root))


def detect_layout(path: str | os.PathLike[str]) -> str:
    """Guess the layout of ``path``: ``manifest`` (.csv/.jsonl), ``unsafebench`` (parquet/arrow) or ``imagefolder``.

    Examples
    --------
    >>> detect_layout("labels.csv")
    'manifest'
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".csv", ".jsonl", ".ndjson"):
        return "manifest"
    if suffix in (".parquet", ".arrow"):
        return "unsafebench"
    if p.is_dir():
        markers = ("dataset_dict.json", "state.json", "dataset_info.json")
        if any((p / m).is_file() for m in markers) or any(p.glob("*.arrow")) or any(p.rglob("*.parquet")):
            return "unsafebench"
        return "imagefolder"
    if not p.exists():
        raise DatasetError(f"dataset {str(p)!r} does not exist; pass an ImageFolder root, a .csv/.jsonl "
                           "manifest or an UnsafeBench parquet / save_to_disk folder")
    raise DatasetError(f"cannot tell the layout of {str(p)!r}; use one of {', '.join(LAYOUTS)}")


def load_dataset(path: str | os.PathLike[str], *, layout: str | None = None,
                 limit: int | None = None) -> BenchDataset:
    """Load a local benchmark dataset in any supported layout.

    Parameters
    ----------
    path : str or Path
        ImageFolder root, manifest file, or UnsafeBench parquet / save_to_disk folder.
    layout : {"imagefolder", "manifest", "unsafebench"}, optional
        Skip detection.
    limit : int, optional
        Keep only the first ``limit`` samples.

    Examples
    --------
    >>> ds = load_dataset("data/tiny", limit=10)  # doctest: +SKIP
    """
    chosen = layout or detect_layout(path)
    loaders: Mapping[str, Callable[[str | os.PathLike[str]], BenchDataset]] = {
        "imagefolder": load_image_folder, "manifest": load_manifest, "unsafebench": load_unsafebench,
    }
    if chosen not in loaders:
        raise InvalidParameterError(f"layout {chosen!r} is unknown; use one of {', '.join(LAYOUTS)}")
    return loaders[chosen](path).head(limit)

