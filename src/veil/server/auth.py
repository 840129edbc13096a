"""Who is asking, what they may do, and how often.

A request is authenticated by ``Authorization: Bearer TOKEN`` (the API) or by the review
page's session cookie. Cookie-authenticated requests that change state must carry the
session's CSRF token (``X-CSRF-Token`` header, or a ``csrf`` form field); bearer requests need
none, since browsers never attach them on their own.

Roles (:data:`PERMISSIONS`): ``submitter`` submits and reads its own submissions' results and
delivered images; ``moderator`` works the queue, reveals originals with a reason and decides;
``admin`` manages tokens and exports the audit log.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from veil.store import Actor, Store
from veil.store.models import Token, WebSession

#: What each permission needs. Routes declare a permission; tests check every role against every route.
PERMISSIONS: dict[str, frozenset[str]] = {
    "submit": frozenset({"submitter"}),
    "read": frozenset({"submitter", "moderator"}),  # submitters: their own items only
    "moderate": frozenset({"moderator"}),
    "admin": frozenset({"admin"}),
}

SESSION_COOKIE = "veil_session"
LOGIN_CSRF_COOKIE = "veil_login_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Principal:
    """The authenticated caller."""

    token: Token
    session: WebSession | None = None

    @property
    def actor(self) -> Actor:
        return Actor.of(self.token)

    @property
    def role(self) -> str:
        return self.token.role


class RateLimiter:
    """A token bucket per API token: ``per_minute`` requests on average, bursts of ``burst``.

    Kept in the server process (one process serves the API); 0 turns it off.
    """

    def __init__(self, per_minute: float, burst: int | None = None) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst if burst is not None else max(1, int(per_minute // 4)))
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: int) -> float:
        """0 when the request may go ahead, else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            level, last = self._buckets.get(key, (self.burst, now))
            level = min(self.burst, level + (now - last) * self.rate)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, now)
                return 0.0
            self._buckets[key] = (level, now)
            return (1.0 - level) / self.rate


async def authenticate(request: Request) -> Principal:
    """The caller, from a bearer token or the session cookie; 401 if neither is valid."""
    store: Store = request.app.state.store
    header = request.headers.get("authorization", "")
    principal: Principal | None = None
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise HTTPException(401, "Authorization must be 'Bearer TOKEN'", headers={"WWW-Authenticate": "Bearer"})
        token = await run_in_threadpool(store.token_for, secret.strip())
        if token is None:
            raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
        principal = Principal(token)
    elif sid := request.cookies.get(SESSION_COOKIE):
        found = await run_in_threadpool(store.session_for, sid)
        if found is not None:
            principal = Principal(found[1], found[0])
    if principal is None:
        raise HTTPException(401, "sign in: send 'Authorization: Bearer TOKEN' (veil token create prints one)",
                            headers={"WWW-Authenticate": "Bearer"})
    # API calls and every state change count; a signed-in page's own image loads do not (a queue
    # page shows up to 200 thumbnails at once, and the page itself bounds them)
    limited = principal.session is None or request.method not in SAFE_METHODS
    wait = request.app.state.limiter.check(principal.token.id) if limited else 0.0
    if wait:
        raise HTTPException(429, f"rate limit of {request.app.state.settings.rate_limit:g} requests per minute "
                                 f"for this token exceeded; retry in {wait:.1f} s",
                            headers={"Retry-After": str(max(1, round(wait)))})
    if principal.session is not None and request.method not in SAFE_METHODS:
        await check_csrf(request, principal.session.csrf)
    return principal


async def check_csrf(request: Request, expected: str) -> None:
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = await request.form()
        value = form.get("csrf")
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent, expected):
        raise HTTPException(403, "missing or wrong CSRF token (reload the page)")


def require(principal: Principal, permission: str) -> None:
    """403 unless the principal's role has ``permission``."""
    allowed = PERMISSIONS[permission]
    if principal.role not in allowed:
        raise HTTPException(403, f"role {principal.role!r} may not do this (needs {' or '.join(sorted(allowed))})")
