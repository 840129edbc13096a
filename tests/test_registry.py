"""veil.registry: the name → object map every pluggable stage uses."""

from __future__ import annotations

import pytest

from veil.errors import UnknownNameError
from veil.registry import Registry


def test_register_get_and_list_sorted():
    r: Registry[int] = Registry("number")
    assert r.register("two", 2) == 2
    r.register("one", 1)
    assert r.get("one") == 1 and r.get("two") == 2
    assert r.names() == ["one", "two"] and list(r) == ["one", "two"] and len(r) == 2
    assert "one" in r and "three" not in r


def test_decorator_registers_and_returns_the_object():
    r: Registry[object] = Registry("thing")

    @r.decorator("f")
    def f() -> int:
        return 3

    assert r.get("f") is f and f() == 3


def test_names_filter_by_pattern():
    r: Registry[int] = Registry("x")
    for i, n in enumerate(["gradcam", "gradcam++", "fullgrad"]):
        r.register(n, i)
    assert r.names("gradcam*") == ["gradcam", "gradcam++"]
    assert r.names("nothing*") == []


def test_unknown_name_lists_the_valid_ones():
    r: Registry[int] = Registry("segmentation")
    r.register("slic", 0)
    r.register("bass", 1)
    with pytest.raises(UnknownNameError, match=r"unknown segmentation 'sclic'; valid names: bass, slic"):
        r.get("sclic")
    assert issubclass(UnknownNameError, KeyError) or issubclass(UnknownNameError, ValueError)


def test_empty_registry_says_none():
    with pytest.raises(UnknownNameError, match=r"valid names: \(none\)"):
        Registry("style").get("blur")


def test_duplicate_registration_is_refused():
    r: Registry[int] = Registry("attack")
    r.register("fgsm", 1)
    with pytest.raises(ValueError, match="attack 'fgsm' is already registered"):
        r.register("fgsm", 2)
    assert r.get("fgsm") == 1
