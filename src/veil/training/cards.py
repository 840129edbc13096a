"""The one card writer of every trainer: common sections merged in, validated, written atomically."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from veil.errors import InvalidParameterError

__all__ = ["write_card", "write_json_atomic"]


def write_json_atomic(path: str | os.PathLike[str], obj: Any, *, default: Callable[[Any], Any] | None = None) -> Path:
    """Write ``obj`` as indented JSON through a temporary file and :func:`os.replace`.

    A reader never sees a half-written file: it finds the old file or the new one. The object
    is serialised before anything is written, so an unserialisable value leaves the old file
    (``default`` is :func:`json.dumps`' hook for values JSON lacks, e.g. ``str``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = write_json_atomic(pathlib.Path(tempfile.mkdtemp()) / "a.json", {"n": 1})
    >>> json.loads(p.read_text())
    {'n': 1}
    """
    p = Path(path)
    try:
        text = json.dumps(obj, indent=2, ensure_ascii=False, default=default)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{str(p)!r}: the content is not JSON-serialisable ({exc})") from exc
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p


def write_card(
    path: str | os.PathLike[str],
    fields: Mapping[str, Any],
    *,
    metrics: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    started: float | None = None,
    validate: Callable[[Mapping[str, Any], Path], Any] | None = None,
) -> dict[str, Any]:
    """Write a trained model's card (or a training report) atomically; returns the card as written.

    Every trainer's card has the same shape: its format fields (``type`` or ``arch``,
    ``labels``, weights or adapter, …) given in ``fields``, then ``metrics`` and a ``training``
    section holding the settings, the counters and the timings. ``started`` (a
    :func:`time.monotonic` reading taken when the call began) adds
    ``training.wall_time_this_call_s`` unless the trainer recorded it already.

    Parameters
    ----------
    path : path
        The JSON file to write (folders are created).
    fields : mapping
        The card's format-specific keys, in the order they are written.
    metrics, training : mapping, optional
        Stored under ``"metrics"`` and ``"training"``.
    started : float, optional
        ``time.monotonic()`` at the start of the training call.
    validate : callable, optional
        ``validate(card, path)`` raising a :class:`veil.errors.VeilError` for a card its loader
        would refuse; called before anything is written.

    Examples
    --------
    >>> import tempfile, pathlib, time
    >>> t0 = time.monotonic()
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.json"
    >>> card = write_card(p, {"type": "demo", "labels": ["a", "b"]}, metrics={"val": {"accuracy": 1.0}},
    ...                   training={"steps": 3}, started=t0)
    >>> json.loads(p.read_text()) == card, sorted(card["training"])
    (True, ['steps', 'wall_time_this_call_s'])
    """
    p = Path(path)
    card: dict[str, Any] = dict(fields)
    if metrics is not None:
        card["metrics"] = dict(metrics)
    if training is not None:
        card["training"] = dict(training)
        if started is not None:
            card["training"].setdefault("wall_time_this_call_s", round(time.monotonic() - started, 1))
    if validate is not None:
        validate(card, p)
    write_json_atomic(p, card)
    return card
