"""The first schema: tokens, sessions, items, jobs, decisions, reveals and the audit log.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(200)),
        sa.Column("revoked_at", TZ),
    )
    op.create_index("ix_tokens_token_hash", "tokens", ["token_hash"], unique=True)
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_hash", sa.String(64), nullable=False),
        sa.Column("token_id", sa.Integer, sa.ForeignKey("tokens.id"), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("reveals", sa.Integer, nullable=False),
    )
    op.create_index("ix_sessions_session_hash", "sessions", ["session_hash"], unique=True)
    op.create_table(
        "items",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("submitter_id", sa.Integer, sa.ForeignKey("tokens.id"), nullable=False),
        sa.Column("filename", sa.String(300), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("original_sha256", sa.String(64), nullable=False),
        sa.Column("original_bytes", sa.Integer, nullable=False),
        sa.Column("original_format", sa.String(20), nullable=False),
        sa.Column("delivered_sha256", sa.String(64)),
        sa.Column("mask_sha256", sa.String(64)),
        sa.Column("blobs", sa.JSON),
        sa.Column("result", sa.JSON),
        sa.Column("unsafe", sa.Boolean),
        sa.Column("fail_closed", sa.Boolean),
        sa.Column("needs_review", sa.Boolean, nullable=False),
        sa.Column("max_score", sa.Float),
        sa.Column("categories", sa.String(500), nullable=False),
        sa.Column("models", sa.String(500), nullable=False),
        sa.Column("review", sa.String(20), nullable=False),
        sa.Column("reviewed_by", sa.String(200)),
        sa.Column("reviewed_at", TZ),
        sa.Column("corrections", sa.Integer, nullable=False),
    )
    for col in ("submitter_id", "created_at", "needs_review", "review"):
        op.create_index(f"ix_items_{col}", "items", [col])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.String(32), sa.ForeignKey("items.id"), nullable=False, unique=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(100)),
        sa.Column("lease_until", sa.Float),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("finished_at", TZ),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.String(32), sa.ForeignKey("items.id"), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_index("ix_decisions_item_id", "decisions", ["item_id"])
    op.create_table(
        "reveals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.String(32), sa.ForeignKey("items.id"), nullable=False),
        sa.Column("token_id", sa.Integer, sa.ForeignKey("tokens.id"), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("grant_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("grant_expires", sa.Float, nullable=False),
        sa.Column("used_at", TZ),
    )
    op.create_index("ix_reveals_item_id", "reveals", ["item_id"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("item_id", sa.String(32)),
        sa.Column("reason", sa.Text),
        sa.Column("detail", sa.JSON),
    )
    for col in ("at", "action", "item_id"):
        op.create_index(f"ix_audit_events_{col}", "audit_events", [col])
    # The audit log is append-only, enforced by the database itself.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION veil_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION veil_audit_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{event.lower()} BEFORE {event} ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS veil_audit_append_only()")
    for name in ("audit_events", "reveals", "decisions", "jobs", "items", "sessions", "tokens"):
        op.drop_table(name)
