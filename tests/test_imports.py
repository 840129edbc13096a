"""The import graph of the ``veil`` package: no cycle between its packages.

Every ``import`` is read from the source with :mod:`ast` — module-level and function-level
alike (an import hidden inside a function is still a dependency, only a later one) — except
those under ``if TYPE_CHECKING:`` (annotations only). Modules are grouped by their package
below ``veil`` (``veil.classify.vlm`` → ``veil.classify``; top-level modules stand alone), and
the test fails on any cycle between groups, naming the edges and the lines that make it.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import veil

SRC = Path(veil.__file__).resolve().parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, module: str | None = None) -> list[tuple[str, int]]:
    """``(imported veil module, line)`` for every runtime import in ``path`` (module ``module``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = module or _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "veil")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "veil":
                # `from veil import pipeline` imports the module veil.pipeline
                found.extend((f"{target}.{a.name}", node.lineno) for a in node.names)
                found.append((target, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _group(module: str, known: set[str]) -> str | None:
    """``veil.classify.vlm`` → ``veil.classify``; ``None`` for names that are not modules."""
    while module and module not in known:
        module = module.rpartition(".")[0]
    if not module or module == "veil":
        return None  # the root package: re-exports only, lazily
    return ".".join(module.split(".")[:2])


def package_graph() -> dict[str, dict[str, list[str]]]:
    """``{group: {imported group: ["file:line", ...]}}`` over the whole ``veil`` source tree."""
    files = sorted(SRC.rglob("*.py"))
    known = {_module_name(p) for p in files}
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in files:
        src = _group(_module_name(path), known)
        if src is None:
            continue
        for target, line in _imports(path):
            dst = _group(target, known)
            if dst is not None and dst != src:
                graph[src][dst].append(f"{path.relative_to(SRC.parent)}:{line}")
    return graph


def find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = dfs(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = dfs(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycle_between_veil_packages():
    graph = package_graph()
    cycle = find_cycle(graph)
    if cycle:
        edges = "\n".join(f"  {a} -> {b}: {', '.join(graph[a][b][:3])}" for a, b in zip(cycle, cycle[1:], strict=False))
        raise AssertionError(f"import cycle between veil packages:\n{edges}")


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"veil.a": {"veil.b": ["a.py:1"]}, "veil.b": {"veil.c": ["b.py:2"]},
             "veil.c": {"veil.a": ["c.py:3"]}}
    assert find_cycle(graph) == ["veil.a", "veil.b", "veil.c", "veil.a"]
    assert find_cycle({"veil.a": {"veil.b": ["a.py:1"]}, "veil.b": {}}) is None


def test_graph_sees_function_level_imports_and_skips_type_checking(tmp_path):
    mod = tmp_path / "probe.py"
    mod.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import veil.pipeline\n"
                   "def f():\n    from veil.classify import base\n    import veil.image\n"
                   "    from . import styles\n")
    found = _imports(mod, "veil.counterfactual.probe")
    assert ("veil.classify.base", 5) in found
    assert ("veil.image", 6) in found
    assert ("veil.counterfactual.styles", 7) in found  # relative imports resolve in their package
    assert not any(name == "veil.pipeline" for name, _ in found)


def test_vlm_transport_imports_only_downward():
    graph = package_graph()
    assert set(graph["veil.vlm"]) <= {"veil.errors", "veil.registry", "veil.image", "veil.taxonomy"}
    for user in ("veil.classify", "veil.rationale", "veil.moderator"):
        assert "veil.vlm" in graph[user]


@pytest.mark.parametrize("module", ["veil.types", "veil.vlm", "veil.errors", "veil.registry"])
def test_light_modules_do_not_import_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(SRC.parent)})
    assert out.stdout.strip() == "False", f"import {module} loaded torch"


# -- what the shell and a safe scan import (a test of *what* is imported, not of time) ---------
#: Heavy libraries the command shell must not load to parse arguments, print help or the version.
SHELL_HEAVY = ("torch", "numba", "llvmlite", "scipy", "numpy", "PIL", "pydantic", "onnxruntime", "onnx2torch",
               "cv2", "pyarrow", "sqlalchemy", "fastapi", "skimage")
#: What listing the registries (``veil list``, ``veil scan --help``) and scanning safe images must
#: not load: the gradient and segmentation stacks (numpy, Pillow and onnxruntime are fine there).
GRADIENT_HEAVY = ("torch", "numba", "llvmlite", "scipy", "onnx2torch", "skimage", "pytorch_grad_cam")


def _loaded_after(code: str, names: tuple[str, ...]) -> list[str]:
    """The modules of ``names`` that ``code`` leaves in ``sys.modules`` of a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint('LOADED:' + ','.join(n for n in {names!r} if n in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(SRC.parent)})
    assert out.returncode == 0, out.stderr[-2000:]
    (line,) = [ln for ln in out.stdout.splitlines() if ln.startswith("LOADED:")]
    return [n for n in line.removeprefix("LOADED:").split(",") if n]


def _run_cli(*argv: str) -> str:
    """Code that runs ``veil ARGV`` in-process, as the console script does, and survives its exit."""
    return ("import sys, veil.cli\n"
            f"sys.argv = ['veil', *{list(argv)!r}]\n"
            "try:\n    veil.cli.main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n")


def test_probe_sees_a_heavy_import():
    # the probe itself must be able to fail: importing numpy is seen
    assert _loaded_after("import numpy", ("numpy", "torch")) == ["numpy"]


def test_importing_the_cli_and_building_the_app_loads_nothing_heavy():
    code = "import typer.main, veil.cli\ntyper.main.get_command(veil.cli.app)"
    assert _loaded_after(code, SHELL_HEAVY) == []


@pytest.mark.parametrize("argv", [("version",), ("--help",), ("token", "--help")], ids=["version", "help", "group-help"])
def test_version_and_help_load_nothing_heavy(argv):
    # Typer coerces options through pydantic: even the absent --help flag used to load it
    assert _loaded_after(_run_cli(*argv), SHELL_HEAVY) == []


@pytest.mark.parametrize("argv", [("list",), ("scan", "--help")], ids=["list", "scan-help"])
def test_registry_names_load_no_gradient_or_segmentation_stack(argv):
    assert _loaded_after(_run_cli(*argv), GRADIENT_HEAVY) == []


def test_safe_image_scan_loads_no_gradient_or_segmentation_stack():
    # A classifier that calls every image safe: the pipeline classifies, finds nothing to
    # search, and never needs torch (attribution), numba (BASS) or scipy (merging).
    code = (
        "import numpy as np\n"
        "from veil.pipeline import SafeguardConfig, Safeguarder\n"
        "class Safe:\n"
        "    name, labels, unsafe_labels, threshold, config = 'safe', ('safe', 'unsafe'), ('unsafe',), 0.5, {}\n"
        "    def predict_proba(self, images):\n"
        "        return np.tile(np.array([[0.9, 0.1]], np.float32), (len(images), 1))\n"
        "    def unsafe_score(self, proba):\n"
        "        return proba[:, 1]\n"
        "sg = Safeguarder(SafeguardConfig(models=(Safe(),), attribution='fullgrad', segmentation='bass'))\n"
        "result = sg.run(np.full((40, 60, 3), 128, np.uint8))\n"
        "assert not result.unsafe, result\n"
    )
    assert _loaded_after(code, GRADIENT_HEAVY) == []


def test_bass_kernels_are_jitted_on_first_use():
    code = (
        "import numpy as np, sys\n"
        "import veil.segment.bass as b\n"
        "assert 'numba' not in sys.modules and not hasattr(b._connected, 'py_func')\n"
        "labels = b.bass(np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8), n_segments=4)\n"
        "assert labels.shape == (24, 32)\n"
        "assert all(hasattr(getattr(b, name), 'py_func') for name in b._kernel.kernels), 'a kernel was left un-jitted'\n"
    )
    assert "numba" in _loaded_after(code, ("numba",))


def test_graph_kernels_are_jitted_on_first_use():
    code = (
        "import numpy as np, sys\n"
        "import veil.segment.graph as g\n"
        "assert 'numba' not in sys.modules and not hasattr(g._segments, 'py_func')\n"
        "labels = g.felzenszwalb_labels(np.zeros((12, 16, 3), np.uint8), scale=10.0)\n"
        "assert labels.shape == (12, 16) and int(labels.max()) == 0\n"
        "assert all(hasattr(getattr(g, name), 'py_func') for name in g._kernel.kernels), 'a kernel was left un-jitted'\n"
    )
    assert "numba" in _loaded_after(code, ("numba",))
