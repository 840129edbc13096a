"""The service as the tests run it: a real app whose pipeline uses a tiny in-test classifier.

``uvicorn --factory tests.server.testapp:app_from_env`` serves it; the environment says where
the database and data live (``VEIL_TEST_DB``, ``VEIL_TEST_DATA``) and how slow the classifier is
(``VEIL_TEST_SLOW``, seconds per batch, for the kill-and-restart test).
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


class SlowMagenta(MagentaClassifier):
    """:class:`MagentaClassifier` that sleeps ``delay`` seconds per batch."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__("magenta")
        self.delay = delay

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        if self.delay:
            time.sleep(self.delay)
        return super().predict_proba(images)


def pipeline_config(delay: float = 0.0) -> SafeguardConfig:
    return SafeguardConfig(models=(SlowMagenta(delay),), attribution="occlusion", segmentation="felzenszwalb",
                           style="fill", max_depth=6, rationale="grounded", seed=0)


def settings(db: str | None, data: str | Path, *, delay: float = 0.0, **kw: Any) -> ServiceSettings:
    return ServiceSettings(db=db, data=Path(data), safeguard=pipeline_config(delay), **kw)


def app_from_env() -> Any:
    delay = float(os.environ.get("VEIL_TEST_SLOW", "0"))
    s = settings(os.environ.get("VEIL_TEST_DB") or None, os.environ["VEIL_TEST_DATA"], delay=delay,
                 lease=float(os.environ.get("VEIL_TEST_LEASE", "30")), poll=0.1,
                 rate_limit=float(os.environ.get("VEIL_TEST_RATE", "6000")),
                 workers=int(os.environ.get("VEIL_TEST_WORKERS", "1")))
    return create_app(s, make_safeguarder=lambda: Safeguarder(pipeline_config(delay)))
