"""Reading training and benchmark records: the one JSONL / CSV manifest reader.

Every trainer (``veil train``, ``veil train-moderator``, ``veil train-vlm``) and the benchmark
datasets (:mod:`veil.bench.datasets`) read their manifests here, so a malformed file is
reported the same way everywhere: ``path:line: what is wrong``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from veil.errors import InvalidParameterError, VeilError

__all__ = ["read_csv", "read_jsonl", "read_manifest"]

#: Suffixes read as one JSON object per line.
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


def read_jsonl(path: str | Path, *, error: type[VeilError] = InvalidParameterError) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of a JSON-lines file.

    Raises
    ------
    error (InvalidParameterError by default)
        ``path:line: not valid JSON (…)`` or ``path:line: expected a JSON object, got list``;
        an unreadable file names the path and the reason.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "d.jsonl")
    >>> _ = open(f, "w").write('{"a": 1}\\n\\n{"a": 2}\\n')
    >>> read_jsonl(f)
    [(1, {'a': 1}), (3, {'a': 2})]
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {str(p)!r}: {exc}") from exc
    rows: list[tuple[int, dict[str, Any]]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise error(f"{p}:{n}: not valid JSON ({exc}); write one JSON object per line") from None
        if not isinstance(obj, dict):
            raise error(f"{p}:{n}: expected a JSON object, got {type(obj).__name__}")
        rows.append((n, obj))
    return rows


def read_csv(path: str | Path, *, error: type[VeilError] = InvalidParameterError) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` for every row of a CSV file with a header (column names stripped)."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            return [(n, {(k or "").strip(): v for k, v in row.items()})
                    for n, row in enumerate(reader, start=2)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise error(f"cannot read {str(p)!r}: {exc}") from exc


def read_manifest(path: str | Path, *, error: type[VeilError] = InvalidParameterError) -> list[tuple[int, dict[str, Any]]]:
    """Rows of a ``.jsonl`` (``.ndjson``, ``.json`` lines) or ``.csv`` manifest, with their line numbers."""
    p = Path(path)
    if p.suffix.lower() in JSONL_SUFFIXES:
        return read_jsonl(p, error=error)
    if p.suffix.lower() == ".csv":
        return read_csv(p, error=error)
    raise error(f"manifest {str(p)!r}: expected .jsonl or .csv, got {p.suffix or 'no suffix'!r}")
