"""The service's store: one SQL database (SQLite or PostgreSQL, the same code) plus blobs.

Everything that changes state is one transaction that also appends to the audit log, so an
action and its audit record exist together or not at all.

Jobs are leased: :meth:`Store.claim` marks a queued job (or one whose lease ran out because
its worker died) ``running`` under a fresh owner id and a lease time that the worker renews
with :meth:`Store.heartbeat`. :meth:`Store.complete` commits the result only while the job is
still running under that owner — a worker that lost its lease cannot commit, so a result is
committed exactly once however often a job is started. On PostgreSQL the candidate row is
picked with ``FOR UPDATE SKIP LOCKED``; SQLite serializes writers (``BEGIN IMMEDIATE``; readers
do not wait: WAL) and the claim is a conditional ``UPDATE`` whose row count says whether it won.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, create_engine, delete, event, func, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from veil.errors import InvalidParameterError, VeilError
from veil.store.blobs import BlobStore
from veil.store.models import (
    DECISIONS,
    ROLES,
    AuditEvent,
    Decision,
    Item,
    Job,
    Reveal,
    Token,
    WebSession,
    utcnow,
)

#: How long a reveal grant stays usable (seconds); it is also single-use.
GRANT_SECONDS = 60.0
#: Execution option that marks a write transaction (SQLite begins those IMMEDIATE).
WRITE = "veil_write"
#: Shortest reason accepted for a reveal.
MIN_REASON = 3


class NotFoundError(VeilError, LookupError):
    """No such item, token or session."""


class ConflictError(VeilError, ValueError):
    """The request does not fit the item's state (not processed yet, already revoked…)."""


def _count(s: Session, stmt: Any) -> int:
    """Rows an UPDATE changed."""
    return int(cast(CursorResult[Any], s.execute(stmt)).rowcount)


def hash_secret(secret: str) -> str:
    """SHA-256 (hex) of a random token or session id; enough for 32-byte random secrets."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret(prefix: str = "veil_") -> str:
    return prefix + secrets.token_urlsafe(32)


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 (the driver the ``server`` extra installs)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys, a busy timeout and ``BEGIN IMMEDIATE``."""
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises ArgumentError for junk
        raise InvalidParameterError(f"--db {url!r} is not a database URL (e.g. sqlite:///veil.db, "
                                    f"postgresql+psycopg://user@host/db): {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # transactions are begun explicitly below
            cur = dbapi_conn.cursor()
            for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=30000", "synchronous=NORMAL"):
                cur.execute(f"PRAGMA {pragma}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # writers take the write lock up front (no lock-upgrade deadlocks); readers never wait
            # for it (WAL)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

        return engine
    if parsed.get_backend_name() != "postgresql":
        raise InvalidParameterError(f"--db must be a sqlite:// or postgresql:// URL, got {parsed.get_backend_name()!r}")
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest Alembic revision shipped with Veil."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    with engine.execution_options(**{WRITE: True}).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@dataclass(frozen=True)
class Actor:
    """Who does something: a token's id, name and role (``system`` for the workers)."""

    token_id: int | None
    name: str
    role: str

    @classmethod
    def of(cls, token: Token) -> Actor:
        return cls(token.id, token.name, token.role)


SYSTEM = Actor(None, "system", "system")


@dataclass(frozen=True)
class Claim:
    """A job a worker holds: ``owner`` is unique to this claim."""

    job_id: int
    item_id: str
    owner: str
    attempt: int


@dataclass
class ItemFilter:
    """Filters of the item list and the review queue (None: no filter)."""

    queue: bool = False  # only what needs a person and is not decided yet
    review: str | None = None
    status: str | None = None
    category: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    submitter_id: int | None = None
    sort: str = "score_desc"  # score_desc, score_asc, newest, oldest
    limit: int = 50
    offset: int = 0


class Store:
    """The database and the blob folder of one service.

    Parameters
    ----------
    url : str
        SQLAlchemy URL (``sqlite:///path.db`` or ``postgresql+psycopg://user@host/db``).
    data : path
        Folder for blobs (and the default SQLite database).
    """

    def __init__(self, url: str, data: str | Path, *, run_migrations: bool = True) -> None:
        self.url = normalize_url(url)
        self.data = Path(data)
        self.data.mkdir(parents=True, exist_ok=True)
        self.blobs = BlobStore(self.data / "blobs")
        self.engine = make_engine(self.url)
        if run_migrations:
            migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self.engine.execution_options(**{WRITE: True}), expire_on_commit=False)

    @classmethod
    def open(cls, db: str | None, data: str | Path) -> Store:
        """``db`` None: SQLite at ``DATA/veil.db``."""
        data = Path(data)
        data.mkdir(parents=True, exist_ok=True)
        return cls(db or f"sqlite:///{(data / 'veil.db').absolute()}", data)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def tx(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        with self._write_sessions() as s, s.begin():
            yield s

    # -- audit -------------------------------------------------------------------------------
    @staticmethod
    def _audit(s: Session, actor: Actor, action: str, *, item_id: str | None = None, reason: str | None = None,
               **detail: Any) -> None:
        s.add(AuditEvent(at=utcnow(), actor=actor.name, role=actor.role, action=action, item_id=item_id,
                         reason=reason, detail=detail or None))

    def audit(self, actor: Actor, action: str, *, item_id: str | None = None, reason: str | None = None,
              **detail: Any) -> None:
        with self.tx() as s:
            self._audit(s, actor, action, item_id=item_id, reason=reason, **detail)

    def audit_events(self, *, item_id: str | None = None, action: str | None = None,
                     batch: int = 500) -> Iterator[AuditEvent]:
        """Every audit event in order (streamed in batches)."""
        last = 0
        while True:
            with self._sessions() as s:
                q = select(AuditEvent).where(AuditEvent.id > last).order_by(AuditEvent.id).limit(batch)
                if item_id:
                    q = q.where(AuditEvent.item_id == item_id)
                if action:
                    q = q.where(AuditEvent.action == action)
                rows = list(s.scalars(q))
            if not rows:
                return
            yield from rows
            last = rows[-1].id

    # -- tokens and sessions -----------------------------------------------------------------
    def create_token(self, name: str, role: str, *, actor: Actor | None = None) -> tuple[Token, str]:
        """A new token; returns it and its secret (shown once, only the hash is kept)."""
        if role not in ROLES:
            raise InvalidParameterError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if not name.strip() or len(name) > 200:
            raise InvalidParameterError(f"token name must be 1-200 characters, got {name!r}")
        secret = new_secret()
        by = actor or Actor(None, "cli", "admin")
        with self.tx() as s:
            tok = Token(name=name.strip(), role=role, token_hash=hash_secret(secret), created_at=utcnow(),
                        created_by=by.name)
            s.add(tok)
            s.flush()
            self._audit(s, by, "token_create", token_id=tok.id, name=tok.name, token_role=role)
        return tok, secret

    def revoke_token(self, token_id: int, *, actor: Actor) -> Token:
        with self.tx() as s:
            tok = s.get(Token, token_id)
            if tok is None:
                raise NotFoundError(f"no token with id {token_id}")
            if tok.revoked_at is not None:
                raise ConflictError(f"token {token_id} ({tok.name}) is already revoked")
            tok.revoked_at = utcnow()
            s.execute(delete(WebSession).where(WebSession.token_id == token_id))
            self._audit(s, actor, "token_revoke", token_id=tok.id, name=tok.name, token_role=tok.role)
            return tok

    def tokens(self) -> list[Token]:
        with self._sessions() as s:
            return list(s.scalars(select(Token).order_by(Token.id)))

    def token_for(self, secret: str) -> Token | None:
        """The live token with this secret, or None (unknown or revoked)."""
        with self._sessions() as s:
            tok = s.scalar(select(Token).where(Token.token_hash == hash_secret(secret)))
        return tok if tok is not None and tok.revoked_at is None else None

    def create_session(self, token: Token, *, ttl: float = 8 * 3600) -> tuple[str, str]:
        """A web session for ``token``: returns the cookie value and its CSRF token."""
        sid, csrf = new_secret("s_"), secrets.token_urlsafe(32)
        with self.tx() as s:
            s.add(WebSession(session_hash=hash_secret(sid), token_id=token.id, csrf=csrf, created_at=utcnow(),
                             expires_at=time.time() + ttl, reveals=0))
            self._audit(s, Actor.of(token), "login")
        return sid, csrf

    def session_for(self, sid: str) -> tuple[WebSession, Token] | None:
        with self._sessions() as s:
            row = s.execute(select(WebSession, Token).join(Token, Token.id == WebSession.token_id)
                            .where(WebSession.session_hash == hash_secret(sid))).first()
        if row is None:
            return None
        sess, tok = row
        if sess.expires_at < time.time() or tok.revoked_at is not None:
            return None
        return sess, tok

    def end_session(self, sid: str) -> None:
        with self.tx() as s:
            s.execute(delete(WebSession).where(WebSession.session_hash == hash_secret(sid)))

    # -- submissions and jobs ----------------------------------------------------------------
    def submit(self, actor: Actor, data: bytes, *, filename: str, fmt: str) -> Item:
        """Store an accepted upload and queue its job (the bytes are validated by the caller)."""
        if actor.token_id is None:
            raise InvalidParameterError("submissions need a token")
        sha, new = self.blobs.put(data)
        try:
            with self.tx() as s:
                item = Item(id=uuid.uuid4().hex, submitter_id=actor.token_id, filename=filename[:300],
                            created_at=utcnow(), original_sha256=sha, original_bytes=len(data),
                            original_format=fmt[:20], needs_review=False, categories="", models="",
                            review="pending", corrections=0)
                s.add(item)
                s.flush()
                s.add(Job(item_id=item.id, status="queued", attempts=0, created_at=utcnow()))
                self._audit(s, actor, "submit", item_id=item.id, sha256=sha, bytes=len(data), format=fmt,
                            filename=filename[:300])
        except BaseException:
            if new:  # nothing stays behind for a submission that was not recorded
                self.blobs.remove(sha)
            raise
        return item

    def claim(self, worker: str, *, lease: float = 30.0, max_attempts: int = 3) -> Claim | None:
        """Lease the oldest runnable job (queued, or running with an expired lease) or None."""
        now = time.time()
        stale = (Job.status == "running") & (Job.lease_until < now)
        for _ in range(5):
            owner = f"{worker}:{secrets.token_hex(4)}"
            with self.tx() as s:
                dead = list(s.scalars(select(Job.item_id).where(stale, Job.attempts >= max_attempts)))
                if dead:
                    s.execute(update(Job).where(stale, Job.attempts >= max_attempts).values(
                        status="failed", lease_owner=None, finished_at=utcnow(),
                        error=f"the worker stopped while processing it {max_attempts} times; not retried")
                        .execution_options(synchronize_session=False))
                    for item_id in dead:
                        self._audit(s, SYSTEM, "job_failed", item_id=item_id, attempts=max_attempts)
                runnable = or_(Job.status == "queued", stale)
                row = s.execute(select(Job.id, Job.item_id, Job.attempts).where(runnable).order_by(Job.id)
                                .limit(1).with_for_update(skip_locked=True)).first()
                if row is None:
                    return None
                won = _count(s, update(Job).where(Job.id == row.id, runnable).values(
                    status="running", lease_owner=owner, lease_until=now + lease, attempts=Job.attempts + 1)
                    .execution_options(synchronize_session=False))
                if won == 1:
                    return Claim(row.id, row.item_id, owner, row.attempts + 1)
        return None

    def heartbeat(self, claim: Claim, *, lease: float = 30.0) -> bool:
        """Extend the lease; False when the job is no longer this claim's."""
        with self.tx() as s:
            return _count(s, update(Job).where(Job.id == claim.job_id, Job.lease_owner == claim.owner,
                                               Job.status == "running")
                          .values(lease_until=time.time() + lease)
                          .execution_options(synchronize_session=False)) == 1

    def complete(self, claim: Claim, *, status: str, fields: dict[str, Any], error: str | None = None) -> bool:
        """Commit a job's outcome (``done`` or ``failed``) and its item's result, exactly once.

        Returns False, writing nothing, when the claim lost its lease to another worker.
        """
        if status not in ("done", "failed"):
            raise InvalidParameterError(f"status must be 'done' or 'failed', got {status!r}")
        with self.tx() as s:
            won = _count(s, update(Job).where(Job.id == claim.job_id, Job.lease_owner == claim.owner,
                                              Job.status == "running")
                         .values(status=status, finished_at=utcnow(), lease_until=None, error=error)
                         .execution_options(synchronize_session=False))
            if won != 1:
                return False
            s.execute(update(Item).where(Item.id == claim.item_id).values(**fields)
                      .execution_options(synchronize_session=False))
            self._audit(s, SYSTEM, "processed", item_id=claim.item_id, status=status, attempt=claim.attempt,
                        worker=claim.owner, unsafe=fields.get("unsafe"), fail_closed=fields.get("fail_closed"),
                        delivered_sha256=fields.get("delivered_sha256"))
        return True

    # -- reading -----------------------------------------------------------------------------
    def item(self, item_id: str) -> tuple[Item, Job]:
        with self._sessions() as s:
            row = s.execute(select(Item, Job).join(Job, Job.item_id == Item.id).where(Item.id == item_id)).first()
        if row is None:
            raise NotFoundError(f"no item with id {item_id!r}")
        return row[0], row[1]

    def items(self, f: ItemFilter) -> tuple[list[tuple[Item, Job]], int]:
        """Items matching ``f`` (a page of them) and how many match in all."""
        q = select(Item, Job).join(Job, Job.item_id == Item.id)
        if f.queue:
            q = q.where(Item.needs_review.is_(True), Item.review.in_(("pending", "escalated")))
        if f.review:
            q = q.where(Item.review == f.review)
        if f.status:
            q = q.where(Job.status == f.status)
        if f.category:
            q = q.where(Item.categories.contains(f",{f.category},"))
        if f.model:
            q = q.where(Item.models.contains(f",{f.model},"))
        if f.since:
            q = q.where(Item.created_at >= f.since)
        if f.until:
            q = q.where(Item.created_at < f.until)
        if f.submitter_id is not None:
            q = q.where(Item.submitter_id == f.submitter_id)
        order = {"score_desc": (Item.max_score.desc().nulls_last(), Item.created_at),
                 "score_asc": (Item.max_score.asc().nulls_last(), Item.created_at),
                 "newest": (Item.created_at.desc(),), "oldest": (Item.created_at.asc(),)}
        if f.sort not in order:
            raise InvalidParameterError(f"sort must be one of {', '.join(order)}, got {f.sort!r}")
        with self._sessions() as s:
            total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
            rows = s.execute(q.order_by(*order[f.sort]).limit(f.limit).offset(f.offset)).all()
        return [(r[0], r[1]) for r in rows], int(total)

    def facets(self) -> dict[str, list[str]]:
        """The categories and models seen so far (for the page's filter menus)."""
        cats: set[str] = set()
        models: set[str] = set()
        with self._sessions() as s:
            for c, m in s.execute(select(Item.categories, Item.models).distinct()):
                cats.update(x for x in (c or "").split(",") if x)
                models.update(x for x in (m or "").split(",") if x)
        return {"categories": sorted(cats), "models": sorted(models)}

    def job_counts(self) -> dict[str, int]:
        with self._sessions() as s:
            return {st: int(n) for st, n in s.execute(select(Job.status, func.count()).group_by(Job.status))}

    # -- moderation --------------------------------------------------------------------------
    def decide(self, item_ids: Sequence[str], actor: Actor, action: str, *, reason: str | None = None) -> int:
        """Record one decision on each item (all or none); returns how many."""
        if action not in DECISIONS:
            raise InvalidParameterError(f"action must be one of {', '.join(DECISIONS)}, got {action!r}")
        if not item_ids:
            raise InvalidParameterError("no items given")
        with self.tx() as s:
            for item_id in item_ids:
                row = s.execute(select(Item, Job.status).join(Job, Job.item_id == Item.id)
                                .where(Item.id == item_id)).first()
                if row is None:
                    raise NotFoundError(f"no item with id {item_id!r}")
                if row[1] != "done":
                    raise ConflictError(f"item {item_id} is {row[1]}, not processed yet: nothing to decide")
                item = row[0]
                at = utcnow()
                s.add(Decision(item_id=item_id, actor=actor.name, action=action, reason=reason, at=at))
                item.review, item.reviewed_by, item.reviewed_at = DECISIONS[action], actor.name, at
                self._audit(s, actor, "decision", item_id=item_id, reason=reason, decision=action,
                            bulk=len(item_ids) > 1)
        return len(item_ids)

    def decisions(self, item_id: str) -> list[Decision]:
        with self._sessions() as s:
            return list(s.scalars(select(Decision).where(Decision.item_id == item_id).order_by(Decision.id)))

    def reveal(self, item_id: str, actor: Actor, reason: str, *, session_id: int | None = None) -> str:
        """Log a reveal with its reason and return a single-use grant for the original."""
        reason = (reason or "").strip()
        if len(reason) < MIN_REASON:
            raise InvalidParameterError(f"a reveal needs a reason of at least {MIN_REASON} characters")
        if actor.token_id is None:
            raise InvalidParameterError("reveals need a token")
        grant = secrets.token_urlsafe(32)
        with self.tx() as s:
            if s.get(Item, item_id) is None:
                raise NotFoundError(f"no item with id {item_id!r}")
            s.add(Reveal(item_id=item_id, token_id=actor.token_id, reason=reason, at=utcnow(),
                         grant_hash=hash_secret(grant), grant_expires=time.time() + GRANT_SECONDS))
            if session_id is not None:
                s.execute(update(WebSession).where(WebSession.id == session_id)
                          .values(reveals=WebSession.reveals + 1).execution_options(synchronize_session=False))
            self._audit(s, actor, "reveal", item_id=item_id, reason=reason, via="page" if session_id else "api")
        return grant

    def redeem(self, item_id: str, actor: Actor, grant: str) -> str | None:
        """Use a reveal grant: the original's SHA-256, or None if the grant is unknown, used or old."""
        with self.tx() as s:
            won = _count(s, update(Reveal).where(
                Reveal.grant_hash == hash_secret(grant), Reveal.item_id == item_id,
                Reveal.token_id == actor.token_id, Reveal.used_at.is_(None), Reveal.grant_expires > time.time())
                .values(used_at=utcnow()).execution_options(synchronize_session=False))
            if won != 1:
                return None
            item = s.get(Item, item_id)
            if item is None:
                return None
            self._audit(s, actor, "original_served", item_id=item_id, sha256=item.original_sha256)
            return item.original_sha256

    def reveal_count(self, session_id: int) -> int:
        with self._sessions() as s:
            return int(s.scalar(select(WebSession.reveals).where(WebSession.id == session_id)) or 0)

    def correct(self, item_id: str, actor: Actor, fields: dict[str, Any], *, reason: str | None,
                detail: dict[str, Any]) -> None:
        """Save a moderator's corrected mask (the caller re-verified it)."""
        with self.tx() as s:
            item = s.get(Item, item_id)
            if item is None:
                raise NotFoundError(f"no item with id {item_id!r}")
            before = item.delivered_sha256
            for k, v in fields.items():
                setattr(item, k, v)
            item.corrections = (item.corrections or 0) + 1
            self._audit(s, actor, "mask_correction", item_id=item_id, reason=reason,
                        delivered_before=before, delivered_after=fields.get("delivered_sha256"), **detail)
