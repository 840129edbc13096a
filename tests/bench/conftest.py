"""Fixtures of the benchmark tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bench_script(name: str) -> ModuleType:
    """``bench/<name>.py`` (a script, not a package) imported as a module."""
    spec = importlib.util.spec_from_file_location(f"veil_bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def extent_bench() -> ModuleType:
    """``bench/extent.py`` imported as a module."""
    return bench_script("extent")


def fake_bsds(root: Path, shape: tuple[int, int] = (60, 90), n: int = 2, seed: int = 0) -> Path:
    """``root`` laid out as BSDS500 is (``images/test/*.jpg``), with ``n`` random photos of ``shape``."""
    import numpy as np
    from PIL import Image

    folder = root / "images" / "test"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    return root
