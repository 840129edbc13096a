"""The store on SQLite and on a real PostgreSQL: schema, tokens, the leased job queue, the audit log."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from tests.service_fixtures import database_url
from veil.store import SYSTEM, Actor, ConflictError, ItemFilter, Store, migrate
from veil.store.models import Base, Item, Token

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path):
    st = Store(database_url(request.param, tmp_path), tmp_path / "data")
    yield st
    st.close()


def submitter(st: Store, name: str = "sub") -> Actor:
    tok, _ = st.create_token(name, "submitter")
    return Actor.of(tok)


def test_migrations_build_the_models_schema_and_rerun_cleanly(store: Store) -> None:
    migrate(store.engine)  # a second run is a no-op
    insp = inspect(store.engine)
    for table in Base.metadata.sorted_tables:
        cols = {c["name"] for c in insp.get_columns(table.name)}
        assert cols == {c.name for c in table.columns}, table.name
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"


def test_tokens_are_stored_hashed_and_revocable(store: Store) -> None:
    tok, secret = store.create_token("alice", "moderator")
    assert store.token_for(secret).id == tok.id
    assert store.token_for(secret + "x") is None
    with store.engine.connect() as conn:
        dump = " ".join(str(v) for row in conn.execute(select(Token.__table__)) for v in row)
    assert secret not in dump and secret[5:] not in dump
    admin = Actor(None, "root", "admin")
    store.revoke_token(tok.id, actor=admin)
    assert store.token_for(secret) is None
    with pytest.raises(ConflictError, match="already revoked"):
        store.revoke_token(tok.id, actor=admin)
    with pytest.raises(ValueError, match="role must be one of"):
        store.create_token("bob", "root")


def test_a_result_is_committed_once_even_when_a_lease_is_lost(store: Store) -> None:
    item = store.submit(submitter(store), b"img", filename="a.png", fmt="PNG")
    first = store.claim("w1", lease=0.0)  # expires at once, as if its worker died
    assert first is not None and first.item_id == item.id and first.attempt == 1
    second = store.claim("w2", lease=30.0)
    assert second is not None and second.job_id == first.job_id and second.attempt == 2
    assert store.claim("w3") is None  # leased and alive: nobody else gets it
    assert not store.heartbeat(first)
    assert not store.complete(first, status="done", fields={"unsafe": True})  # the stale worker loses
    assert store.complete(second, status="done", fields={"unsafe": False, "max_score": 0.1})
    assert not store.complete(second, status="done", fields={"unsafe": True})  # never twice
    got, job = store.item(item.id)
    assert (job.status, job.attempts, got.unsafe) == ("done", 2, False)
    assert [e.detail["attempt"] for e in store.audit_events(action="processed")] == [2]


def test_a_job_whose_worker_keeps_dying_fails_after_max_attempts(store: Store) -> None:
    item = store.submit(submitter(store), b"img", filename="a.png", fmt="PNG")
    for _ in range(2):
        assert store.claim("w", lease=0.0, max_attempts=2) is not None
    assert store.claim("w", lease=0.0, max_attempts=2) is None
    _, job = store.item(item.id)
    assert job.status == "failed" and "2 times" in job.error
    assert [e.item_id for e in store.audit_events(action="job_failed")] == [item.id]


def test_concurrent_workers_process_every_job_exactly_once(store: Store) -> None:
    actor = submitter(store)
    ids = {store.submit(actor, f"img{i}".encode(), filename=f"{i}.png", fmt="PNG").id for i in range(24)}
    done: list[str] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        while (claim := store.claim(name)) is not None:
            if store.complete(claim, status="done", fields={"unsafe": False}):
                with lock:
                    done.append(claim.item_id)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(done) == sorted(ids)
    assert store.job_counts() == {"done": 24}
    assert len(list(store.audit_events(action="processed"))) == 24


def test_the_audit_log_refuses_updates_and_deletes(store: Store) -> None:
    store.audit(SYSTEM, "note", reason="x")
    for sql in ("UPDATE audit_events SET actor = 'someone else'", "DELETE FROM audit_events"):
        with pytest.raises(Exception, match="append-only"):
            with store.engine.begin() as conn:
                conn.execute(text(sql))
    assert [e.actor for e in store.audit_events()][-1] == "system"


def test_a_failed_submission_leaves_no_blob(store: Store) -> None:
    ghost = Actor(999_999, "ghost", "submitter")  # no such token: the foreign key refuses the row
    with pytest.raises(Exception):  # noqa: B017 - the driver's IntegrityError
        store.submit(ghost, b"never stored", filename="a.png", fmt="PNG")
    assert not any(p.is_file() for p in store.blobs.root.rglob("*"))


def test_blobs_are_content_addressed(store: Store) -> None:
    sha, new = store.blobs.put(b"abc")
    assert new and store.blobs.put(b"abc") == (sha, False)
    assert store.blobs.path(sha).read_bytes() == b"abc"
    with pytest.raises(ValueError, match="64 lowercase hex"):
        store.blobs.path("../../etc/passwd")


def test_item_filters_and_sorting(store: Store) -> None:
    actor = submitter(store)
    rows = [("a", 0.9, ",nudity,", ",m1,", True), ("b", 0.4, "", "", True), ("c", 0.7, ",gore,", ",m2,", True),
            ("d", 0.05, "", "", False)]
    ids = {}
    for name, score, cats, models, review in rows:
        item = store.submit(actor, name.encode(), filename=name, fmt="PNG")
        claim = store.claim("w")
        assert store.complete(claim, status="done", fields={"max_score": score, "categories": cats,
                                                           "models": models, "needs_review": review})
        ids[name] = item.id
    names = {v: k for k, v in ids.items()}

    def listed(**kw: object) -> list[str]:
        got, _ = store.items(ItemFilter(**kw))  # type: ignore[arg-type]
        return [names[i.id] for i, _ in got]

    assert listed(queue=True) == ["a", "c", "b"]
    assert listed(queue=True, sort="score_asc") == ["b", "c", "a"]
    assert listed(category="gore") == ["c"]
    assert listed(model="m1") == ["a"]
    store.decide([ids["a"]], Actor(None, "mod", "moderator"), "confirm")
    assert listed(queue=True) == ["c", "b"]
    assert listed(review="confirmed") == ["a"]
    with store.engine.connect() as conn:
        assert conn.execute(select(Item.review).where(Item.id == ids["a"])).scalar() == "confirmed"
