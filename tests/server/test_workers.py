"""Workers load their models once and reuse them (in-process app, real worker threads)."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from tests.server.conftest import flagged_png, safe_png
from tests.server.testapp import pipeline_config, settings
from veil.pipeline import Safeguarder
from veil.server import create_app


def test_models_are_loaded_once_per_worker(tmp_path: Path) -> None:
    built: list[Safeguarder] = []

    def make() -> Safeguarder:
        sg = Safeguarder(pipeline_config())
        built.append(sg)
        return sg

    app = create_app(settings(None, tmp_path, workers=2, poll=0.05), make_safeguarder=make)
    store = app.state.store
    secret = store.create_token("s", "submitter")[1]
    with TestClient(app) as c:
        assert len(built) == 2  # both workers loaded theirs at start
        h = {"Authorization": f"Bearer {secret}"}
        ids = [c.post("/v1/images", headers=h, files={"image": (f"{k}.png", img, "image/png")}).json()["id"]
               for k, img in enumerate([flagged_png(1), safe_png(2), flagged_png(3), safe_png(4)])]
        deadline = time.monotonic() + 60
        while any(store.item(i)[1].status not in ("done", "failed") for i in ids):
            assert time.monotonic() < deadline, "jobs not processed within 60 s"
            time.sleep(0.05)
        # a worker counts a job just after committing it: wait for the counters too (this raced)
        while sum(w.processed for w in app.state.pool.workers) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(built) == 2  # four images, no new models
        assert sum(w.processed for w in app.state.pool.workers) == 4
        assert [store.item(i)[1].status for i in ids] == ["done"] * 4
    assert not any(w.is_alive() for w in app.state.pool.workers)  # stopped with the app
    store.close()
