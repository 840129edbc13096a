"""Small inputs for the engine tests: the bundled demo photos, shrunk, and the demo model card.

The demo model keys on a planted red mark, so the set has unsafe images (obfuscated, with
overlays) and safe ones; at 128 px with SLIC and no rationale one image takes well under a
second, which keeps three engines, resume and the input formats within the test budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
DEMO_CARD = ROOT / "examples" / "demo-model" / "model.json"
DEMO_IMAGES = ROOT / "examples" / "images"
#: CLI options that keep an image cheap (and deterministic: seed 0).
FAST = ["--model", str(DEMO_CARD), "--segmentation", "slic", "--rationale", "none", "--search-size", "128",
        "--segment-size", "128", "--max-depth", "4", "--seed", "0"]


def fast_config():  # noqa: ANN201 - the pipeline import is deferred
    from veil.pipeline import SafeguardConfig

    return SafeguardConfig(models=(str(DEMO_CARD),), segmentation="slic", rationale=None, search_size=128,
                           segment_size=128, max_depth=4, seed=0)


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``a/`` and ``b/`` with the six demo photos at 128 px; ``b`` reuses ``a``'s names (collisions)."""
    root = tmp_path_factory.mktemp("photos")
    files = sorted(DEMO_IMAGES.glob("*.png"))
    for i, f in enumerate(files):
        img = Image.open(f).convert("RGB")
        img.thumbnail((128, 128))
        folder = root / ("a" if i < 3 else "b")
        folder.mkdir(exist_ok=True)
        name = f.name if i < 3 else files[i - 3].name  # same names under a/ and b/
        img.save(folder / name)
    return root


@pytest.fixture(scope="session")
def ray_local() -> Iterator[object]:
    """One local Ray instance (2 CPUs) for the whole session: its start-up is slow."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
