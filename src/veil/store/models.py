"""The service's tables (SQLAlchemy 2 declarative models).

The schema itself is created and changed only by the Alembic migrations shipped in
``veil/store/migrations``; these classes must match the latest revision (a test checks).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Roles a token can have, and what each may do (the server checks these names).
ROLES = ("submitter", "moderator", "admin")
#: Job states.
JOB_STATES = ("queued", "running", "done", "failed")
#: Review states of an item; ``pending`` until a moderator decides.
REVIEW_STATES = ("pending", "confirmed", "overturned", "escalated")
#: Decisions a moderator can record, and the review state each leaves.
DECISIONS = {"confirm": "confirmed", "overturn": "overturned", "escalate": "escalated"}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time Veil stores is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class Token(Base):
    """An API token. Only the SHA-256 of the secret is kept; the secret is shown once."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebSession(Base):
    """A signed-in review page: the cookie holds a random id whose SHA-256 is stored here."""

    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("tokens.id"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[float] = mapped_column(Float)
    reveals: Mapped[int] = mapped_column(Integer, default=0)


class Item(Base):
    """One submitted image and, once processed, its result."""

    __tablename__ = "items"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    submitter_id: Mapped[int] = mapped_column(ForeignKey("tokens.id"), index=True)
    filename: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    original_sha256: Mapped[str] = mapped_column(String(64))
    original_bytes: Mapped[int] = mapped_column(Integer)
    original_format: Mapped[str] = mapped_column(String(20))
    delivered_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mask_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: name → SHA-256 of the blobs derived from the result: overlays, the label map, the attribution
    blobs: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    unsafe: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    fail_closed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    max_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    categories: Mapped[str] = mapped_column(String(500), default="")
    models: Mapped[str] = mapped_column(String(500), default="")
    review: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    corrections: Mapped[int] = mapped_column(Integer, default=0)


class Job(Base):
    """The durable work queue: one job per item, leased by a worker and renewed by heartbeats."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), unique=True)
    status: Mapped[str] = mapped_column(String(10), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class Decision(Base):
    """Every decision ever recorded (the item keeps the latest in ``review``)."""

    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Reveal(Base):
    """A moderator's request to see an original: a single-use grant, valid for a short time."""

    __tablename__ = "reveals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), index=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("tokens.id"))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    grant_hash: Mapped[str] = mapped_column(String(64), unique=True)
    grant_expires: Mapped[float] = mapped_column(Float)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEvent(Base):
    """Append-only: the migrations add triggers that refuse UPDATE and DELETE on this table."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(40), index=True)
    item_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    def to_dict(self) -> dict[str, Any]:
        at = as_utc(self.at)
        return {"id": self.id, "at": at.isoformat() if at else None, "actor": self.actor, "role": self.role,
                "action": self.action, "item_id": self.item_id, "reason": self.reason,
                "detail": self.detail or {}}
