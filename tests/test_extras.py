"""Every install hint names an extra that exists: ``require(module, extra)`` → ``pip install veil[extra]``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomllib

import veil
from veil.errors import MissingDependencyError, require

ROOT = Path(veil.__file__).resolve().parents[2]


def _require_calls() -> list[tuple[str, str, str]]:
    calls = []
    for path in sorted(Path(veil.__file__).resolve().parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "require"
                    and len(node.args) == 2 and all(isinstance(a, ast.Constant) for a in node.args)):
                calls.append((f"{path.name}:{node.lineno}", node.args[0].value, node.args[1].value))
    return calls


def test_every_required_extra_exists():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    calls = _require_calls()
    assert len(calls) >= 10  # the scan sees the calls (nudenet, clip, vlm, sam, bench, ...)
    missing = [f"{where}: require({mod!r}, {extra!r})" for where, mod, extra in calls if extra not in extras]
    assert not missing, f"install hints name extras that pyproject.toml lacks: {missing}"
    assert any(mod == "nudenet" and extra == "nudenet" for _, mod, extra in calls)


def test_require_names_the_extra():
    with pytest.raises(MissingDependencyError, match=r"pip install veil\[vlm\]"):
        require("veil_no_such_module_xyz", "vlm")
