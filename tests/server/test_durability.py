"""``kill -9`` mid-job, restart: every accepted image is processed exactly once, no decision is lost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.hostile import calm, with_patch
from tests.server.conftest import BACKENDS, Served, flagged_png, png
from tests.server.testapp import SLOW_MARK
from tests.service_fixtures import ServerProcess, database_url, wait_status
from veil.store import Store


def marked_png() -> bytes:
    arr = with_patch(calm(seed=21))
    arr[0, 0] = np.array(SLOW_MARK, np.uint8)
    return png(arr)


@pytest.mark.parametrize("kind", BACKENDS)
def test_kill_9_mid_job_then_restart(kind: str, tmp_path: Path) -> None:
    db = database_url(kind, tmp_path)
    store = Store(db, tmp_path / "data")
    tokens = {r: store.create_token(r, r)[1] for r in ("submitter", "moderator", "admin")}
    env = {"VEIL_TEST_LEASE": "2"}
    first = ServerProcess(db, tmp_path / "data", log=tmp_path / "first.log", VEIL_TEST_SLOW="600", **env).start()
    served = Served(first, store, tokens)
    try:
        with served.client("submitter") as c, served.client("moderator") as m:
            decided = c.post("/v1/images", files={"image": ("a.png", flagged_png(1), "image/png")}).json()["id"]
            wait_status(c, decided)
            assert m.post(f"/v1/items/{decided}/decision", json={"action": "confirm", "reason": "before"}).status_code == 200
            slow = c.post("/v1/images", files={"image": ("slow.png", marked_png(), "image/png")}).json()["id"]
            queued = c.post("/v1/images", files={"image": ("b.png", flagged_png(2), "image/png")}).json()["id"]
            wait_status(c, slow, ("running",))
        first.kill()  # mid-job: the worker sleeps inside the classifier
    finally:
        first.kill()
    assert store.item(slow)[1].status == "running" and store.item(queued)[1].status == "queued"

    second = ServerProcess(db, tmp_path / "data", log=tmp_path / "second.log", **env).start()
    served.server = second
    try:
        with served.client("submitter") as c:
            done = {i: wait_status(c, i, timeout=90) for i in (slow, queued)}
    finally:
        second.stop()
    assert all(d["status"] == "done" for d in done.values())
    assert done[slow]["attempts"] == 2 and done[queued]["attempts"] == 1
    processed = [e.item_id for e in store.audit_events(action="processed")]
    assert sorted(processed) == sorted([decided, slow, queued])  # each result committed exactly once
    assert [e.item_id for e in store.audit_events(action="submit")] == [decided, slow, queued]
    item, _ = store.item(decided)
    assert item.review == "confirmed" and [d.reason for d in store.decisions(decided)] == ["before"]
    for i in (slow, queued):
        got, _ = store.item(i)
        assert got.delivered_sha256 and store.blobs.exists(got.delivered_sha256)
        assert json.dumps(got.result)  # the record is there and serializable
    store.close()
