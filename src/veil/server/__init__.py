"""The moderator review service: an HTTP API, a durable job queue and a review page over
:class:`~veil.pipeline.Safeguarder` (``veil serve``; see docs/service.md).

Needs the ``server`` extra (``pip install veil[server]``).
"""

from __future__ import annotations

from veil.errors import require

for _module in ("fastapi", "uvicorn", "python_multipart", "jinja2", "sqlalchemy", "alembic"):
    require(_module, "server")

from veil.server.app import create_app  # noqa: E402
from veil.server.settings import ServiceSettings  # noqa: E402

__all__ = ["ServiceSettings", "create_app"]
