"""veil.checks: what each check accepts, what it refuses, and what its message says."""

from __future__ import annotations

import math

import numpy as np
import pytest

from veil import checks
from veil.errors import InvalidParameterError


@pytest.mark.parametrize("value", [0, 2, 0.5, np.float32(0.25), np.int64(3), np.float64(1.0)])
def test_number_takes_finite_reals_and_returns_floats(value):
    out = checks.number("x", value, low=0)
    assert type(out) is float and out == float(value)


@pytest.mark.parametrize("value", [True, False, np.True_, math.nan, math.inf, -math.inf, "1", None, [1.0], 1j])
def test_number_refuses_bools_non_finite_and_non_numbers(value):
    with pytest.raises(InvalidParameterError, match=r"^x must be a finite number >= 0, got "):
        checks.number("x", value, low=0)


def test_number_bounds_open_closed_and_off():
    assert checks.number("s", 1, low=0, high=1) == 1.0
    assert checks.number("s", 0, low=0, high=1) == 0.0
    for v in (0, 1.0):  # both ends excluded
        with pytest.raises(InvalidParameterError, match=r"s must be a number in \(0, 1\), got"):
            checks.number("s", v, low=0, high=1, low_open=True, high_open=True)
    with pytest.raises(InvalidParameterError, match=r"q must be a quantile in \[0, 1\), got 1"):
        checks.number("q", 1, low=0, high=1, high_open=True, noun="a quantile")
    with pytest.raises(InvalidParameterError, match=r"g must be a finite number > 0, got 0"):
        checks.number("g", 0, low=0, low_open=True)
    with pytest.raises(InvalidParameterError, match=r"h must be a finite number <= 2 \(pixels\), got 3"):
        checks.number("h", 3, high=2, note="pixels")
    # off: 0 is taken whatever the bounds, anything else still has to meet them
    assert checks.number("r", 0, low=1, off=True) == 0.0 and checks.number("r", 1.5, low=1, off=True) == 1.5
    with pytest.raises(InvalidParameterError, match=r"r must be 0 \(off\) or a finite ratio >= 1, got 0.5"):
        checks.number("r", 0.5, low=1, off=True, noun="a ratio")
    with pytest.raises(InvalidParameterError, match="r must be 0 \\(off\\)"):
        checks.number("r", math.nan, low=1, off=True)
    # an unbounded side says "finite" whatever the noun; a bound is shown as given
    with pytest.raises(InvalidParameterError, match=r"a must be a finite length >= 1, got inf"):
        checks.number("a", math.inf, low=1, noun="a length")
    with pytest.raises(InvalidParameterError, match=r"b must be a finite number <= 1, got -inf"):
        checks.number("b", -math.inf, high=1)
    with pytest.raises(InvalidParameterError, match=r"d must be a number in \[0, 1e-07\], got 2"):
        checks.number("d", 2, low=0, high=1e-7)
    with pytest.raises(InvalidParameterError, match=r"e must be a finite number >= 0, got 1000"):
        checks.number("e", 10**400, low=0)  # (too large for a float)


def test_integer():
    assert checks.integer("n", np.int32(4), low=1) == 4 and type(checks.integer("n", 4)) is int
    for bad in (0, -1, 2.0, True, np.True_, "3", None, math.nan):
        with pytest.raises(InvalidParameterError, match=r"^n must be an integer >= 1, got "):
            checks.integer("n", bad, low=1)
    assert checks.integer("w", 0, low=2, off=True) == 0 and checks.integer("w", 2, low=2, off=True) == 2
    with pytest.raises(InvalidParameterError, match=r"w must be 0 \(off\) or an integer >= 2 \(pixels\), got 1"):
        checks.integer("w", 1, low=2, off=True, note="pixels")


def test_flag_and_choice():
    assert checks.flag("f", np.False_) is False and checks.flag("f", True) is True
    for bad in (0, 1, "yes", None):
        with pytest.raises(InvalidParameterError, match="f must be True or False"):
            checks.flag("f", bad)
    assert checks.choice("c", "b", ("a", "b")) == "b"
    with pytest.raises(InvalidParameterError, match=r"c must be 'a', 'b' or 'c', got 'd'"):
        checks.choice("c", "d", ("a", "b", "c"))
    with pytest.raises(InvalidParameterError, match=r"c must be 'a', got None"):
        checks.choice("c", None, ("a",))
    with pytest.raises(InvalidParameterError, match=r"c must be 'a' or 'b', got 'ab'"):
        checks.choice("c", "ab", ["a", "b"])
    with pytest.raises(TypeError, match="options"):
        checks.choice("c", "a", "abc")  # (a string would match its substrings)
