"""What a scan reads: folders (recursive), CSV/JSONL manifests, Parquet/Arrow tables of image bytes.

Every input becomes a :class:`ScanInput`; :func:`scan_items` gives them unique output names
(:func:`veil.output.plan_names`) and turns them into :class:`~veil.engines.base.ScanItem` s,
reading a table row's bytes only when its item is handed to an engine.

Object-store prefixes and files (``s3://bucket/prefix/``, ``gs://…``, ``file:///…``) are
listed and read with ``pyarrow.fs`` — by the worker that judges them, so on a Ray cluster the
bytes go from the store to the actor, not through the driver.

Manifests and tables are recognised by their suffix when named on the command line
(``.csv``, ``.jsonl``/``.ndjson``, ``.parquet``, ``.arrow``); inside a scanned folder every
file is an input to judge, whatever it is called. Manifests are read with
:mod:`veil.bench.datasets`' reader and tables with its UnsafeBench reader (only the
``image`` column is needed here: bytes, a path, or a ``{bytes, path}`` struct).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veil.engines.base import ScanItem
from veil.errors import InvalidParameterError

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".ndjson")
TABLE_SUFFIXES = (".parquet", ".arrow")


@dataclass(frozen=True)
class ScanInput:
    """One input before naming: where it is and what it is called.

    ``key`` is unique per input and names it in hashes (a file path, or ``table#row``);
    ``rel`` is the name the output is derived from; ``path`` the record's ``path``.
    A table row keeps its table (``table``, ``row``) until :func:`scan_items` reads it.
    """

    key: str
    rel: Path
    path: str
    file: str | None = None
    table: Any = None
    row: int = -1

    def item(self, index: int, stem: str) -> ScanItem:
        if self.table is None:
            return ScanItem(index, self.path, stem, file=self.file)
        cell = self.table.column("image")[self.row].as_py()
        data, file = _cell(cell)
        if data is None and file is None:
            return ScanItem(index, self.path, stem, data=b"")  # an empty input gets an error record
        return ScanItem(index, self.path, stem, file=file, data=data)


def _cell(value: Any) -> tuple[bytes | None, str | None]:
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"]), None
        value = value.get("path")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), None
    if isinstance(value, str) and value:
        return None, value
    return None, None


def _folder(root: Path) -> list[ScanInput]:
    from veil.image import iter_scan_files

    return [ScanInput(str(f.absolute()), rel, str(f), file=str(f.absolute()))
            for f, rel in iter_scan_files([root])]


def _manifest(path: Path) -> list[ScanInput]:
    from veil.bench.datasets import DatasetError, _manifest_rows

    rows = _manifest_rows(path)
    if not rows:
        raise DatasetError(f"manifest {str(path)!r} has no rows; add one line per image with an 'image' column")
    out = []
    for i, r in enumerate(rows, 1):
        value = r.get("image")
        if value in (None, ""):
            raise DatasetError(f"manifest {str(path)!r} row {i}: column 'image' is missing or empty; "
                               "every row needs the path of an image (relative to the manifest's folder)")
        p = Path(str(value))
        full = p if p.is_absolute() else path.parent / p
        rel = Path(p.name) if p.is_absolute() else p
        out.append(ScanInput(str(full.absolute()), rel, str(full), file=str(full.absolute())))
    return out


def _table(path: Path) -> list[ScanInput]:
    from veil.bench.datasets import DatasetError, _read_tables

    tables = _read_tables(path)
    if not tables:
        raise DatasetError(f"{str(path)!r} holds no .parquet or .arrow files")
    base = path if path.is_dir() else path.parent
    out = []
    for fname, table, _info in tables:
        if "image" not in table.column_names:
            raise DatasetError(f"{fname!r} has no 'image' column (found {table.column_names}); "
                               "a table input needs image bytes, paths or {bytes, path} structs in 'image'")
        name = Path(fname)
        where = str(path) if path.is_file() else str(base / fname)
        for i in range(table.num_rows):
            cell = table.column("image")[i].as_py()
            data, file = _cell(cell)
            if data is None and file is not None:  # a path in the table: read it like a manifest entry
                f = Path(file) if Path(file).is_absolute() else base / file
                out.append(ScanInput(f"{where}#{i}", name.with_suffix("") / Path(file).name, f"{where}#{i}",
                                     file=str(f.absolute())))
            else:
                out.append(ScanInput(f"{where}#{i}", name.with_suffix("") / f"{i:06d}", f"{where}#{i}",
                                     table=table, row=i))
    return out


def is_uri(path: str | os.PathLike[str]) -> bool:
    """``s3://bucket/key``, ``gs://…``, ``file:///…``: read through ``pyarrow.fs``."""
    return "://" in str(path)


def _filesystem(uri: str) -> tuple[Any, str]:
    from veil.errors import require

    fs_mod: Any = require("pyarrow.fs", "ray")
    try:
        return fs_mod.FileSystem.from_uri(uri)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a bad URI
        raise InvalidParameterError(f"cannot open {uri!r} with pyarrow.fs: {exc}") from exc


def read_uri(uri: str) -> bytes:
    """The bytes of one object-store file (``s3://bucket/key``)."""
    fs, path = _filesystem(uri)
    with fs.open_input_stream(path) as fh:
        return bytes(fh.read())


def _uri(uri: str) -> list[ScanInput]:
    import pyarrow.fs as pafs

    fs, root = _filesystem(uri)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise InvalidParameterError(f"no such file or prefix: {uri!r}")
    scheme = uri.split("://", 1)[0]
    if info.type == pafs.FileType.File:
        files = [info]
        base = root.rsplit("/", 1)[0]
    else:
        files = sorted((f for f in fs.get_file_info(pafs.FileSelector(root, recursive=True))
                        if f.type == pafs.FileType.File), key=lambda f: f.path)
        base = root.rstrip("/")
    out = []
    for f in files:
        full = f"{scheme}://{f.path}" if scheme != "file" else f"file://{f.path}"
        rel = Path(f.path[len(base):].lstrip("/") or Path(f.path).name)
        out.append(ScanInput(full, rel, full, file=full))
    return out


def collect_inputs(paths: Sequence[str | os.PathLike[str]]) -> list[ScanInput]:
    """Every input named by ``paths``: folders recursively, manifests and tables row by row.

    A file reached twice (named itself and through its folder) is scanned once.

    Raises
    ------
    InvalidParameterError
        A path does not exist.
    DatasetError
        A manifest or table is malformed (no ``image`` column, bad JSON); ``pyarrow`` missing
        for a table names the extra.

    Examples
    --------
    >>> [i.path for i in collect_inputs(["examples/images"])][:1]  # doctest: +SKIP
    ['examples/images/01_coffee_mark.png']
    """
    out: list[ScanInput] = []
    seen: set[str] = set()
    for p in paths:
        if is_uri(p):
            found = _uri(str(p))
            for inp in found:
                if inp.key not in seen:
                    seen.add(inp.key)
                    out.append(inp)
            continue
        path = Path(p)
        if not path.exists():
            raise InvalidParameterError(f"no such file or folder: {str(path)!r}")
        suffix = path.suffix.lower()
        if path.is_dir():
            found = _folder(path)
        elif suffix in MANIFEST_SUFFIXES:
            found = _manifest(path)
        elif suffix in TABLE_SUFFIXES:
            found = _table(path)
        else:
            found = [ScanInput(str(path.absolute()), Path(path.name), str(path), file=str(path.absolute()))]
        for inp in found:
            key = inp.key if inp.table is not None or is_uri(inp.key) else str(Path(inp.key).resolve())
            if key not in seen:
                seen.add(key)
                out.append(inp)
    return out


def scan_items(inputs: Sequence[ScanInput], *, skip: set[int] | None = None) -> tuple[list[str], Iterator[ScanItem]]:
    """Unique output stems for ``inputs`` and a lazy stream of their items (``skip``: indices left out).

    Stems depend on the whole input set (never on which inputs a resumed run skips), so a
    resumed scan names every output as the first run did.
    """
    from veil.output import plan_names

    stems = [str(s) for s in plan_names([(Path(i.key), i.rel) for i in inputs])]
    skip = skip or set()

    def gen() -> Iterator[ScanItem]:
        for idx, (inp, stem) in enumerate(zip(inputs, stems, strict=True)):
            if idx not in skip:
                yield inp.item(idx, stem)

    return stems, gen()


def input_sha256(inp: ScanInput) -> str | None:
    """SHA-256 of an input's bytes (None when it cannot be read), as its records carry it."""
    import hashlib

    from veil.image import sha256_file

    try:
        if inp.file is not None and is_uri(inp.file):
            return hashlib.sha256(read_uri(inp.file)).hexdigest()
        if inp.table is None:
            return sha256_file(inp.file or inp.key)
        data, file = _cell(inp.table.column("image")[inp.row].as_py())
        if data is not None:
            return hashlib.sha256(data).hexdigest()
        return sha256_file(file) if file else None
    except OSError:
        return None
