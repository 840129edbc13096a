"""Alembic environment: Veil runs migrations programmatically (:func:`veil.store.migrate`),
handing the connection over in ``config.attributes["connection"]``."""

from __future__ import annotations

from alembic import context

from veil.store.models import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through veil.store.migrate
    raise RuntimeError("run Veil's migrations with veil.store.migrate(engine), not the alembic command")
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
