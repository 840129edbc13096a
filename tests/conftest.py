"""Shared synthetic fixtures: a tiny CNN trained here to key on a planted checkerboard patch.

The planted "unsafe" content is a black-and-white checkerboard (4 px cells): pure detail,
which is exactly what obfuscation must remove. Distractors are flat grey squares, so the
model cannot key on colour alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from veil.classify.torch import TorchClassifier

DISTRACTOR_COLOUR = np.array([128, 128, 128], np.float32)


def checkerboard(p: int, cell: int = 4) -> np.ndarray:
    yy, xx = np.mgrid[0:p, 0:p]
    board = ((yy // cell + xx // cell) % 2).astype(np.float32) * 255.0
    return np.repeat(board[..., None], 3, axis=2)


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run torch on ``n`` threads, then restore. On a busy 2-core runner two contending threads
    are many times slower than one for the tiny networks the tests train."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@pytest.fixture(autouse=True, scope="session")
def _veil_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Graphs exported for onnxruntime scoring go to a temporary cache, not the user's ``~/.cache``."""
    mp = pytest.MonkeyPatch()
    mp.setenv("VEIL_CACHE_DIR", str(tmp_path_factory.mktemp("veil-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Module-wide :func:`torch_threads` (use with ``pytestmark = pytest.mark.usefixtures(...)``)."""
    with torch_threads(1):
        yield


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random colour field with mild noise."""
    small = rng.uniform(40, 200, size=(4, 4, 3)).astype(np.float32)
    t = torch.from_numpy(small).permute(2, 0, 1)[None]
    big = torch.nn.functional.interpolate(t, size=(size, size), mode="bicubic", align_corners=False)
    img = big[0].permute(1, 2, 0).numpy() + rng.normal(0, 6, size=(size, size, 3))
    return img.clip(0, 255).astype(np.float32)


def planted(rng: np.random.Generator, size: int = 96, patch: int | None = None, *,
            unsafe: bool = True, distractor: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """An image and the boolean mask of its planted checkerboard (empty when ``unsafe`` is False)."""
    img = background(rng, size)
    mask = np.zeros((size, size), bool)
    if distractor:
        d = size // 5
        y, x = rng.integers(0, size - d, 2)
        img[y : y + d, x : x + d] = DISTRACTOR_COLOUR
    if unsafe:
        p = patch or int(rng.integers(size // 5, size // 3))
        y, x = rng.integers(0, size - p, 2)
        img[y : y + p, x : x + p] = checkerboard(p) + rng.normal(0, 4, size=(p, p, 3))
        mask[y : y + p, x : x + p] = True
    return img.clip(0, 255).astype(np.uint8), mask


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 16, 3, padding=1, stride=2), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        )
        self.head = torch.nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        return self.head(torch.amax(f, dim=(2, 3)))


@pytest.fixture(scope="session")
def planted_classifier() -> TorchClassifier:
    """TinyNet trained (seeded, ~seconds) to call images with a checkerboard patch unsafe."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = TinyNet()
    clf = TorchClassifier(net, ["safe", "unsafe"], ["unsafe"], input_size=48, mean=(0.5, 0.5, 0.5),
                          std=(0.25, 0.25, 0.25), name="planted")
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    # A fixed pool of 384 images, preprocessed once; 150 Adam steps of 32 drawn from it.
    pool, ys = [], []
    for k in range(384):
        img, _ = planted(rng, 96, unsafe=bool(k % 2), distractor=bool(rng.integers(0, 2)))
        pool.append(img)
        ys.append(k % 2)
    x_all, y_all = clf.preprocess(pool), torch.tensor(ys)
    net.train()
    with torch_threads(1):
        for _ in range(150):
            idx = torch.from_numpy(rng.integers(0, len(pool), 32))
            loss = torch.nn.functional.cross_entropy(net(x_all[idx]), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return clf
