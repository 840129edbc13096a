"""A real ``uvicorn`` server (tests.server.testapp) per test session, on SQLite and on PostgreSQL
(starting one costs seconds: torch is imported), shared by the API and page tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.hostile import calm, encode, with_patch
from tests.service_fixtures import ServerProcess, database_url
from veil.store import Store

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@dataclass
class Served:
    """A running server, the store it uses (opened here too, for setup and checks) and tokens."""

    server: ServerProcess
    store: Store
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, who: str | None = None, **kw: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=30, **kw)  # type: ignore[arg-type]


def start_served(kind: str, tmp: Path, **env: str) -> Served:
    db = database_url(kind, tmp)
    store = Store(db, tmp / "data")
    served = Served(ServerProcess(db, tmp / "data", log=tmp / "server.log", **env).start(), store)
    for role in ("submitter", "moderator", "admin"):
        served.tokens[role] = store.create_token(role, role)[1]
    served.tokens["other"] = store.create_token("other-submitter", "submitter")[1]
    return served


@pytest.fixture(scope="session", params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The shared server of one backend (tests must not depend on what others did to it)."""
    s = start_served(request.param, tmp_path_factory.mktemp(f"serve-{request.param}"))
    yield s
    s.server.stop()
    s.store.close()


def png(arr: np.ndarray) -> bytes:
    return encode(arr, "PNG")


def flagged_png(seed: int = 0) -> bytes:
    """A calm picture with a magenta square: the test classifier flags it."""
    return png(with_patch(calm(seed=seed)))


def safe_png(seed: int = 0) -> bytes:
    return png(calm(seed=seed))
