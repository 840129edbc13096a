"""The per-token rate limit (in-process app: no worker, no uvicorn needed)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.server.testapp import settings
from veil.server import create_app
from veil.server.auth import RateLimiter


def test_each_token_gets_its_own_budget_and_a_retry_after(tmp_path: Path) -> None:
    app = create_app(settings(None, tmp_path, rate_limit=40), start_workers=False)  # bursts of 10
    store = app.state.store
    a, b = (store.create_token(n, "moderator")[1] for n in ("a", "b"))
    with TestClient(app) as c:
        codes = [c.get("/v1/items", headers={"Authorization": f"Bearer {a}"}).status_code for _ in range(14)]
        assert codes[:10] == [200] * 10 and 429 in codes[10:]
        limited = c.get("/v1/items", headers={"Authorization": f"Bearer {a}"})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert "rate limit of 40 requests per minute" in limited.json()["error"]
        assert c.get("/v1/items", headers={"Authorization": f"Bearer {b}"}).status_code == 200
    store.close()


def test_the_bucket_refills_at_the_rate() -> None:
    lim = RateLimiter(per_minute=60, burst=2)
    assert lim.check(1) == 0 and lim.check(1) == 0
    wait = lim.check(1)
    assert 0.9 < wait <= 1.0  # one request per second
    assert RateLimiter(per_minute=0).check(1) == 0  # off
