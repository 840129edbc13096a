"""The moderator service's durable store: SQL tables (SQLAlchemy 2, Alembic migrations run at
start), a leased job queue, an append-only audit log, and image blobs by SHA-256.

Needs the ``server`` extra (``pip install veil[server]``).
"""

from __future__ import annotations

from veil.errors import require

require("sqlalchemy", "server")
require("alembic", "server")

from veil.store.blobs import BlobStore  # noqa: E402
from veil.store.db import (  # noqa: E402
    SYSTEM,
    Actor,
    Claim,
    ConflictError,
    ItemFilter,
    NotFoundError,
    Store,
    hash_secret,
    make_engine,
    migrate,
)

__all__ = ["SYSTEM", "Actor", "BlobStore", "Claim", "ConflictError", "ItemFilter", "NotFoundError", "Store",
           "hash_secret", "make_engine", "migrate"]
