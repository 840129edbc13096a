"""Checks of numeric and named options, shared by the stages that take many of them.

Each check raises :class:`~veil.errors.InvalidParameterError` naming the parameter, what it must be and
what it got, and returns the value as the type the caller computes with. A ``bool`` is never taken for
a number (``True >= 0`` holds in Python, and a switch passed where a size is meant is a mistake), nor a
NaN or an infinity for a bound.

Examples
--------
>>> number("margin", 1.5, low=0)
1.5
>>> number("max_fraction", 0.0, low=0, high=1, low_open=True)
Traceback (most recent call last):
...
veil.errors.InvalidParameterError: max_fraction must be a number in (0, 1], got 0.0
>>> number("aligned", 0, low=1, off=True, noun="a length-to-width ratio")
0.0
>>> integer("rounds", True, low=1)
Traceback (most recent call last):
...
veil.errors.InvalidParameterError: rounds must be an integer >= 1, got True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

from veil.errors import InvalidParameterError


def _is_number(value: Any) -> bool:
    # (numpy's integer and floating scalars register as Integral / Real; Python's bool is an Integral)
    return isinstance(value, Real) and not isinstance(value, (bool, np.bool_))


def _fmt(x: float) -> str:
    # (0.25 as 0.25 and 1 as 1; a bound that :g would round is shown in full)
    return f"{x:g}" if float(f"{x:g}") == x else repr(x)


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{_fmt(low)}, {_fmt(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {_fmt(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {_fmt(high)}"
    return ""


def number(name: str, value: Any, *, low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False, off: bool = False, noun: str = "a number", note: str = "") -> float:
    """``value`` as a float: a finite real number within ``[low, high]`` (ends excluded where ``*_open``).

    Parameters
    ----------
    name : str
        The parameter's name, as the caller spells it.
    value : object
        What was passed.
    low, high : float or None
        Bounds; None leaves that side open.
    low_open, high_open : bool
        Exclude the bound itself.
    off : bool
        Also accept 0, the option's "off", whatever the bounds.
    noun : str
        What the value is ("a quantile", "a share of the image"), for the message.
    note : str
        Added to the message in brackets (a unit, say).
    """
    try:
        v = float(value) if _is_number(value) else math.nan
    except OverflowError:  # (an int too large for a float)
        v = math.nan
    ok = math.isfinite(v)
    if ok and not (off and v == 0):
        ok = ((low is None or (v > low if low_open else v >= low))
              and (high is None or (v < high if high_open else v <= high)))
    if not ok:
        if (low is None or high is None) and noun.startswith("a "):  # (an unbounded side: say that inf is out)
            noun = "a finite " + noun[2:]
        what = " ".join(p for p in (noun, _bounds(low, high, low_open, high_open)) if p)
        raise InvalidParameterError(f"{name} must be {'0 (off) or ' if off else ''}{what}"
                                    f"{f' ({note})' if note else ''}, got {value!r}")
    return v


def integer(name: str, value: Any, *, low: int = 0, off: bool = False, note: str = "") -> int:
    """``value`` as an int: an integer (not a bool, not a float) of at least ``low``; ``off`` also accepts 0."""
    ok = isinstance(value, Integral) and _is_number(value) and (int(value) >= low or (off and int(value) == 0))
    if not ok:
        raise InvalidParameterError(f"{name} must be {'0 (off) or ' if off else ''}an integer >= {low}"
                                    f"{f' ({note})' if note else ''}, got {value!r}")
    return int(value)


def flag(name: str, value: Any) -> bool:
    """``value`` as a bool: True or False (Python's or numpy's), nothing else."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidParameterError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def choice(name: str, value: Any, options: Sequence[str]) -> str:
    """``value`` if it is one of ``options``; the message lists them."""
    if isinstance(options, str) or not options:
        raise TypeError("options must be a non-empty sequence of strings")
    if not (isinstance(value, str) and value in options):
        listed = ", ".join(repr(o) for o in options[:-1]) + f" or {options[-1]!r}" if len(options) > 1 else repr(
            options[0])
        raise InvalidParameterError(f"{name} must be {listed}, got {value!r}")
    return value
