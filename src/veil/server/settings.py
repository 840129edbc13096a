"""Settings of one ``veil serve`` process (every option of the command maps to a field)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from veil.errors import InvalidParameterError
from veil.pipeline import SafeguardConfig


@dataclass
class ServiceSettings:
    """How one ``veil serve`` process runs.

    Parameters
    ----------
    db : str or None
        SQLAlchemy URL; None: SQLite at ``DATA/veil.db``.
    data : Path
        Folder for blobs (originals, delivered images, masks, overlays) and the default database.
    safeguard : SafeguardConfig
        The pipeline settings (the same as ``veil scan``'s).
    workers : int
        Worker threads, each with its own loaded models.
    lease : float
        Seconds a job stays leased without a heartbeat; a worker that died loses its jobs after this.
    poll : float
        Seconds an idle worker waits before asking for work again (a submission wakes it sooner).
    max_attempts : int
        Times a job is started before it fails (a worker died on it each time).
    max_upload_bytes : int
        Largest accepted upload; enforced while reading the body.
    rate_limit : float
        Requests per minute per token (bursts of a quarter of it); 0: no limit.
    near : float
        Safe images whose unsafe score is within this of a threshold still go to the queue.
    session_hours : float
        Lifetime of a review-page session.
    secure_cookies : bool
        Mark cookies ``Secure`` (set it when the service is behind HTTPS).

    Examples
    --------
    >>> ServiceSettings(data="veil-data", workers=2).workers
    2
    """

    db: str | None = None
    data: Path = Path("veil-data")
    safeguard: SafeguardConfig = field(default_factory=SafeguardConfig)
    workers: int = 1
    lease: float = 30.0
    poll: float = 0.5
    max_attempts: int = 3
    max_upload_bytes: int = 25 * 1024 * 1024
    rate_limit: float = 600.0
    near: float = 0.1
    session_hours: float = 8.0
    secure_cookies: bool = False

    def __post_init__(self) -> None:
        self.data = Path(self.data)
        checks = [("workers", self.workers, 0), ("lease", self.lease, 1.0), ("max_attempts", self.max_attempts, 1),
                  ("max_upload_bytes", self.max_upload_bytes, 1), ("rate_limit", self.rate_limit, 0),
                  ("near", self.near, 0), ("session_hours", self.session_hours, 0.01), ("poll", self.poll, 0.01)]
        for name, value, low in checks:
            if value < low:
                raise InvalidParameterError(f"{name} must be at least {low}, got {value}")
