"""The service as the tests run it: a real app whose pipeline uses a tiny in-test classifier.

``uvicorn --factory tests.server.testapp:app_from_env`` serves it; the environment says where
the database and data live (``VEIL_TEST_DB``, ``VEIL_TEST_DATA``) and how slow the classifier is
(``VEIL_TEST_SLOW``, seconds per batch holding a marked image, for the kill-and-restart test).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tests.hostile import MagentaClassifier
from veil.pipeline import SafeguardConfig, Safeguarder
from veil.server import ServiceSettings, create_app

#: A pure-blue top-left pixel marks an image the slow classifier lingers on.
SLOW_MARK = (0, 0, 255)


class SlowMagenta(MagentaClassifier):
    """:class:`MagentaClassifier` that sleeps ``delay`` seconds on batches holding a marked image
    (top-left pixel :data:`SLOW_MARK`), so a test can kill the server while a job runs."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__("magenta")
        self.delay = delay

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        if self.delay and any(tuple(np.asarray(im)[0, 0]) == SLOW_MARK for im in images):
            time.sleep(self.delay)
        return super().predict_proba(images)


def pipeline_config(delay: float = 0.0, max_pixels: int = 4_000_000) -> SafeguardConfig:
    return SafeguardConfig(models=(SlowMagenta(delay),), attribution="occlusion", segmentation="felzenszwalb",
                           style="fill", max_depth=6, rationale="grounded", seed=0, max_pixels=max_pixels)


def settings(db: str | None, data: str | Path, *, delay: float = 0.0, max_pixels: int = 4_000_000,
             **kw: Any) -> ServiceSettings:
    return ServiceSettings(db=db, data=Path(data), safeguard=pipeline_config(delay, max_pixels), **kw)


def app_from_env() -> Any:
    env = os.environ.get
    delay, max_pixels = float(env("VEIL_TEST_SLOW", "0")), int(env("VEIL_TEST_MAX_PIXELS", "4000000"))
    s = settings(env("VEIL_TEST_DB") or None, os.environ["VEIL_TEST_DATA"], delay=delay, max_pixels=max_pixels,
                 lease=float(env("VEIL_TEST_LEASE", "30")), poll=0.1, rate_limit=float(env("VEIL_TEST_RATE", "6000")),
                 workers=int(env("VEIL_TEST_WORKERS", "1")),
                 max_upload_bytes=int(env("VEIL_TEST_MAX_UPLOAD", str(2 * 1024 * 1024))))
    return create_app(s, make_safeguarder=lambda: Safeguarder(pipeline_config(delay, max_pixels)))
