"""The FastAPI application: the JSON API under ``/v1``, the review page, OpenAPI docs at ``/docs``.

``create_app(settings)`` builds it; ``veil serve`` runs it under uvicorn. Nothing here fetches
a URL on a client's behalf: images arrive only as uploads.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import secrets
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from veil.errors import InvalidImageError, NotAnImageError, VeilError
from veil.pipeline import Safeguarder
from veil.server.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Principal,
    RateLimiter,
    authenticate,
    require,
)
from veil.server.processing import correct, current_segments, png_bytes, save_correction, segment_at
from veil.server.settings import ServiceSettings
from veil.server.worker import WorkerPool
from veil.store import ConflictError, ItemFilter, NotFoundError, Store
from veil.store.models import DECISIONS, REVIEW_STATES, ROLES, Item, Job, as_utc

log = logging.getLogger("veil.server")
HERE = Path(__file__).parent
MULTIPART_OVERHEAD = 64 * 1024  # headers and boundaries around the one file part

NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
PAGE_HEADERS = {
    **NO_STORE,
    "Content-Security-Policy": ("default-src 'none'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
                                "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _swagger_assets() -> Path | None:
    """Swagger UI's files from the ``swagger-ui-bundle`` package (the ``server`` extra), if installed."""
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    path = Path(swagger_ui_bundle.swagger_ui_path)
    return path if (path / "swagger-ui-bundle.js").is_file() else None


class TooLarge(Exception):
    pass


# -- request bodies -----------------------------------------------------------------------------
class DecisionIn(BaseModel):
    action: str = Field(description=f"one of {', '.join(DECISIONS)}")
    reason: str | None = Field(None, max_length=2000)


class BulkDecisionIn(DecisionIn):
    ids: list[str] = Field(min_length=1, max_length=500)


class RevealIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="why the original must be seen (audit-logged)")


class MaskIn(BaseModel):
    segments: list[int] | None = Field(None, description="labels to obfuscate; default: the delivered mask's")
    toggle: list[float] | None = Field(None, min_length=2, max_length=2,
                                       description="[x, y] as fractions of width and height: add or remove the region there")
    reason: str | None = Field(None, max_length=2000)


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: str = Field(description=f"one of {', '.join(ROLES)}")


# -- helpers ------------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    v = as_utc(value)
    return v.isoformat() if v else None


def item_json(item: Item, job: Job, *, full: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": item.id, "status": job.status, "created_at": _iso(item.created_at), "filename": item.filename,
        "sha256": item.original_sha256, "delivered_sha256": item.delivered_sha256, "review": item.review,
        "reviewed_by": item.reviewed_by, "needs_review": item.needs_review, "max_score": item.max_score,
        "unsafe": item.unsafe, "fail_closed": item.fail_closed,
        "categories": [c for c in item.categories.split(",") if c],
        "models": [m for m in item.models.split(",") if m], "attempts": job.attempts,
    }
    if full:
        out["result"] = item.result
        out["error"] = job.error
    return out


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers=NO_STORE)


def _parse_date(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, f"{name} must be an ISO date like 2026-12-01 or 2026-12-01T10:00, got {value!r}") from None


def create_app(settings: ServiceSettings, *, store: Store | None = None,
               make_safeguarder: Callable[[], Safeguarder] | None = None, start_workers: bool = True) -> FastAPI:
    """Build the service.

    Parameters
    ----------
    settings : ServiceSettings
        What ``veil serve``'s options say.
    store : Store, optional
        An open store; by default one is opened from ``settings.db`` / ``settings.data`` (migrating it).
    make_safeguarder : callable, optional
        Builds one worker's pipeline (called once per worker, and once for mask corrections);
        by default ``Safeguarder(settings.safeguard)``.
    start_workers : bool
        Start ``settings.workers`` worker threads with the app.

    Examples
    --------
    >>> app = create_app(ServiceSettings(data="veil-data"))  # doctest: +SKIP
    """
    make = make_safeguarder or (lambda: Safeguarder(settings.safeguard))
    the_store = store or Store.open(settings.db, settings.data)
    pool = WorkerPool(the_store, make, settings.workers if start_workers else 0, lease=settings.lease,
                      poll=settings.poll, max_attempts=settings.max_attempts, near=settings.near)
    verifier: dict[str, Safeguarder] = {}
    verifier_lock = threading.Lock()

    def get_verifier() -> Safeguarder:
        with verifier_lock:  # loaded once, on the first mask correction
            if "sg" not in verifier:
                verifier["sg"] = make()
            return verifier["sg"]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(pool.start)
        try:
            yield
        finally:
            await run_in_threadpool(pool.stop)

    docs_assets = _swagger_assets()
    app = FastAPI(title="Veil moderator service", version="1", lifespan=lifespan,
                  docs_url=None if docs_assets else "/docs",
                  description="Submit images, read safeguarded results, review them. "
                              "Authenticate with `Authorization: Bearer TOKEN` (`veil token create`).")
    app.state.store, app.state.settings, app.state.pool = the_store, settings, pool
    app.state.limiter = RateLimiter(settings.rate_limit)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    if docs_assets:  # the API docs page from local files: the service needs no network, nor its users a CDN
        app.mount("/docs-assets", StaticFiles(directory=str(docs_assets)), name="docs-assets")

        @app.get("/docs", include_in_schema=False)
        async def api_docs() -> Response:
            return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} — API",
                                       swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                       swagger_css_url="/docs-assets/swagger-ui.css",
                                       swagger_favicon_url="/docs-assets/favicon-32x32.png")

    # -- errors: JSON with a message and the right status ----------------------------------------
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 401 and not request.url.path.startswith("/v1") and request.method == "GET":
            return RedirectResponse("/login", status_code=303)
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        msgs = [f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "; ".join(msgs) or "invalid request"}, status_code=422)

    @app.exception_handler(VeilError)
    async def veil_error(request: Request, exc: VeilError) -> Response:
        status = 404 if isinstance(exc, NotFoundError) else 409 if isinstance(exc, ConflictError) else \
            415 if isinstance(exc, NotAnImageError) else 422 if isinstance(exc, InvalidImageError) else 400
        return JSONResponse({"error": str(exc)}, status_code=status)

    # -- dependencies -------------------------------------------------------------------------
    def allowed(permission: str) -> Callable[..., Any]:
        async def dep(principal: Principal = Depends(authenticate)) -> Principal:
            require(principal, permission)
            return principal
        return dep

    async def readable_item(item_id: str, principal: Principal = Depends(allowed("read"))) -> tuple[Item, Job]:
        item, job = await run_in_threadpool(the_store.item, item_id)
        if principal.role == "submitter" and item.submitter_id != principal.token.id:
            raise HTTPException(403, "this item was submitted with another token")
        return item, job

    # -- API ----------------------------------------------------------------------------------
    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, Any]:
        """Liveness and the job counts (no authentication; no item data)."""
        return {"ok": True, "jobs": the_store.job_counts(),
                "workers": sum(w.is_alive() for w in pool.workers)}

    upload_doc = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["image"],
        "properties": {"image": {"type": "string", "format": "binary"}}}}}}}

    @app.post("/v1/images", status_code=202, tags=["images"], openapi_extra=upload_doc)
    async def submit(request: Request, principal: Principal = Depends(allowed("submit"))) -> JSONResponse:
        """Submit one image (multipart field ``image``). Its content decides the format, never its
        name or header; refused uploads (empty, not an image, too many bytes or pixels) store nothing."""
        limit = settings.max_upload_bytes
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limit + MULTIPART_OVERHEAD:
            raise HTTPException(413, f"upload of {int(length):,} bytes is over the limit of {limit:,} bytes")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise HTTPException(415, "send the image as multipart/form-data in a field named 'image'")

        async def bounded() -> AsyncGenerator[bytes, None]:
            seen = 0
            async for chunk in request.stream():
                seen += len(chunk)
                if seen > limit + MULTIPART_OVERHEAD:
                    raise TooLarge
                yield chunk

        parser = MultiPartParser(request.headers, bounded(), max_files=1, max_fields=5)
        try:
            form = await parser.parse()
        except TooLarge:
            raise HTTPException(413, f"upload is over the limit of {limit:,} bytes") from None
        except MultiPartException as exc:
            raise HTTPException(400, f"malformed multipart body: {exc.message}") from None
        try:
            upload = form.get("image")
            if not isinstance(upload, UploadFile):
                raise HTTPException(422, "no file in the multipart field 'image'")
            data = await upload.read(limit + 1)
            if len(data) > limit:
                raise HTTPException(413, f"image is over the limit of {limit:,} bytes")
            filename = upload.filename or "upload"
        finally:
            await form.close()
        if not data:
            raise HTTPException(422, "image is empty (0 bytes)")
        fmt = await run_in_threadpool(_validate, data, settings.safeguard.max_pixels)
        item = await run_in_threadpool(the_store.submit, principal.actor, data, filename=filename, fmt=fmt)
        pool.notify()
        return JSONResponse({"id": item.id, "status": "queued", "sha256": item.original_sha256},
                            status_code=202, headers={"Location": f"/v1/images/{item.id}"})

    @app.get("/v1/images/{item_id}", tags=["images"])
    def get_image(found: tuple[Item, Job] = Depends(readable_item)) -> dict[str, Any]:
        """Status (``queued``, ``running``, ``done``, ``failed``) and, when done, the result record."""
        return item_json(*found)

    def stored_png(sha: str | None, found: tuple[Item, Job], what: str) -> Response:
        """A result PNG of the item; 409 while it has none (queued, running, failed)."""
        if sha is None:
            raise HTTPException(409, f"item {found[0].id} has no {what} ({found[1].status})")
        return _png(the_store.blobs.read(sha))

    @app.get("/v1/images/{item_id}/delivered", tags=["images"], response_class=Response)
    def delivered(found: tuple[Item, Job] = Depends(readable_item)) -> Response:
        """The delivered (safeguarded) PNG."""
        return stored_png(found[0].delivered_sha256, found, "delivered image")

    @app.get("/v1/images/{item_id}/mask", tags=["images"], response_class=Response)
    def mask(found: tuple[Item, Job] = Depends(readable_item)) -> Response:
        """The obfuscation mask (PNG, white where the image was obscured)."""
        return stored_png(found[0].mask_sha256, found, "mask")

    @app.get("/v1/images/{item_id}/overlays/{name}", tags=["images"], response_class=Response)
    def overlay(name: str, found: tuple[Item, Job] = Depends(readable_item)) -> Response:
        """An overlay (``attribution`` or ``regions``) drawn on the delivered image."""
        sha = (found[0].blobs or {}).get(f"overlay:{name}")
        if sha is None:
            raise HTTPException(404, f"item {found[0].id} has no {name!r} overlay")
        return _png(the_store.blobs.read(sha))

    @app.get("/v1/items", tags=["review"])
    def list_items(queue: bool = False, review: str | None = None, status: str | None = None,
                   category: str | None = None, model: str | None = None, since: str | None = None,
                   until: str | None = None, sort: str = "score_desc", limit: int = 50, offset: int = 0,
                   principal: Principal = Depends(allowed("read"))) -> dict[str, Any]:
        """List items; ``queue=true``: only those that need a person and are undecided. Submitters see their own."""
        if review and review not in REVIEW_STATES:
            raise HTTPException(422, f"review must be one of {', '.join(REVIEW_STATES)}, got {review!r}")
        if not 1 <= limit <= 500 or offset < 0:
            raise HTTPException(422, f"limit must be 1-500 and offset >= 0, got {limit}, {offset}")
        f = ItemFilter(queue=queue, review=review, status=status, category=category, model=model,
                       since=_parse_date(since, "since"), until=_parse_date(until, "until"), sort=sort,
                       limit=limit, offset=offset,
                       submitter_id=principal.token.id if principal.role == "submitter" else None)
        rows, total = the_store.items(f)
        return {"total": total, "items": [item_json(i, j, full=False) for i, j in rows]}

    @app.post("/v1/items/{item_id}/decision", tags=["review"])
    def decide(item_id: str, body: DecisionIn, principal: Principal = Depends(allowed("moderate"))) -> dict[str, Any]:
        """Confirm, overturn (safe after all) or escalate one item."""
        the_store.decide([item_id], principal.actor, body.action, reason=body.reason)
        return item_json(*the_store.item(item_id), full=False)

    @app.post("/v1/items/decisions", tags=["review"])
    def decide_bulk(body: BulkDecisionIn, principal: Principal = Depends(allowed("moderate"))) -> dict[str, Any]:
        """The same decision on many items (all or none)."""
        n = the_store.decide(body.ids, principal.actor, body.action, reason=body.reason)
        return {"decided": n, "action": body.action}

    @app.post("/v1/items/{item_id}/reveal", tags=["review"])
    def reveal(item_id: str, body: RevealIn, principal: Principal = Depends(allowed("moderate"))) -> dict[str, Any]:
        """Ask to see the original: the reason is written to the audit log, and a single-use URL,
        valid for a minute, is returned."""
        session_id = principal.session.id if principal.session else None
        grant = the_store.reveal(item_id, principal.actor, body.reason, session_id=session_id)
        out: dict[str, Any] = {"url": f"/v1/items/{item_id}/original?grant={grant}", "expires_in": 60}
        if session_id is not None:
            out["session_reveals"] = the_store.reveal_count(session_id)
        return out

    @app.get("/v1/items/{item_id}/original", tags=["review"], response_class=Response)
    def original(item_id: str, grant: str, principal: Principal = Depends(allowed("moderate"))) -> Response:
        """The original bytes, once, with a grant from the reveal route."""
        sha = the_store.redeem(item_id, principal.actor, grant)
        if sha is None:
            raise HTTPException(403, "no valid reveal for this item: ask to reveal it (with a reason) first; "
                                     "each reveal can be used once, within a minute")
        item, _ = the_store.item(item_id)
        media = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp",
                 "BMP": "image/bmp", "TIFF": "image/tiff"}.get(item.original_format, "application/octet-stream")
        return Response(the_store.blobs.read(sha), media_type=media,
                        headers={**NO_STORE, "Content-Disposition": "inline",
                                 "Content-Security-Policy": "default-src 'none'; sandbox"})

    def _correction(item_id: str, body: MaskIn) -> tuple[Item, Any]:
        item, job = the_store.item(item_id)
        if job.status != "done":
            raise ConflictError(f"item {item_id} is {job.status}: nothing to correct yet")
        labels, current = current_segments(the_store, item)
        ids = set(current if body.segments is None else body.segments)
        if body.toggle is not None:
            ids ^= {segment_at(labels, body.toggle[0], body.toggle[1])}
        return item, correct(get_verifier(), the_store, item, sorted(ids))

    @app.post("/v1/items/{item_id}/mask/preview", tags=["review"])
    def mask_preview(item_id: str, body: MaskIn, principal: Principal = Depends(allowed("moderate"))) -> dict[str, Any]:
        """Apply a corrected mask to the original and classify it again; nothing is saved. The
        preview shows newly hidden regions obscured and un-hidden ones still obscured (outlined)."""
        _item, corr = _correction(item_id, body)
        return {"segments": corr.segments, "unsafe": corr.unsafe, "scores_after": corr.result.scores_after,
                "models_after": [{"name": m.name, "unsafe_score": round(m.unsafe_score, 6), "unsafe": m.unsafe}
                                 for m in corr.result.models_after],
                "obfuscated_fraction": round(corr.result.obfuscated_fraction, 6),
                "preview": "data:image/png;base64," + base64.b64encode(png_bytes(corr.preview)).decode()}

    @app.post("/v1/items/{item_id}/mask", tags=["review"])
    def mask_save(item_id: str, body: MaskIn, principal: Principal = Depends(allowed("moderate"))) -> dict[str, Any]:
        """Save a corrected mask: verified again here, refused (409) while the image is still unsafe."""
        item, corr = _correction(item_id, body)
        fields = save_correction(the_store, item, corr, near=settings.near)
        the_store.correct(item_id, principal.actor, fields, reason=body.reason,
                          detail={"segments": corr.segments, "unsafe_after": corr.unsafe,
                                  "scores_after": corr.result.scores_after})
        return item_json(*the_store.item(item_id))

    @app.post("/v1/tokens", status_code=201, tags=["admin"])
    def create_token(body: TokenIn, principal: Principal = Depends(allowed("admin"))) -> dict[str, Any]:
        """Create a token; its secret is in this response only."""
        tok, secret = the_store.create_token(body.name, body.role, actor=principal.actor)
        return {"id": tok.id, "name": tok.name, "role": tok.role, "token": secret}

    @app.get("/v1/tokens", tags=["admin"])
    def list_tokens(principal: Principal = Depends(allowed("admin"))) -> dict[str, Any]:
        return {"tokens": [{"id": t.id, "name": t.name, "role": t.role, "created_at": _iso(t.created_at),
                            "created_by": t.created_by, "revoked_at": _iso(t.revoked_at)}
                           for t in the_store.tokens()]}

    @app.delete("/v1/tokens/{token_id}", tags=["admin"])
    def revoke_token(token_id: int, principal: Principal = Depends(allowed("admin"))) -> dict[str, Any]:
        tok = the_store.revoke_token(token_id, actor=principal.actor)
        return {"id": tok.id, "revoked_at": _iso(tok.revoked_at)}

    @app.get("/v1/audit", tags=["admin"], response_class=Response)
    def audit(format: str = "jsonl", item_id: str | None = None, action: str | None = None,
              principal: Principal = Depends(allowed("admin"))) -> Response:
        """The audit log as JSON Lines (``format=jsonl``) or CSV (``format=csv``), oldest first."""
        if format not in ("jsonl", "csv"):
            raise HTTPException(422, f"format must be 'jsonl' or 'csv', got {format!r}")
        the_store.audit(principal.actor, "audit_export", format=format, item_id_filter=item_id, action_filter=action)
        events = the_store.audit_events(item_id=item_id, action=action)

        def jsonl() -> Iterator[str]:
            for e in events:
                yield json.dumps(e.to_dict()) + "\n"

        def as_csv() -> Iterator[str]:
            cols = ["id", "at", "actor", "role", "action", "item_id", "reason", "detail"]
            buf = io.StringIO()
            w = csv.writer(buf)
            w.writerow(cols)
            for e in events:
                d = e.to_dict()
                d["detail"] = json.dumps(d["detail"])
                w.writerow([d[c] for c in cols])
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
            yield buf.getvalue()

        media = "application/x-ndjson" if format == "jsonl" else "text/csv"
        return StreamingResponse(jsonl() if format == "jsonl" else as_csv(), media_type=media,
                                 headers={**NO_STORE, "Content-Disposition": f"attachment; filename=audit.{format}"})

    # -- review page --------------------------------------------------------------------------
    def page(request: Request, name: str, principal: Principal | None, **ctx: Any) -> Response:
        ctx.update(request=request, me=principal.token if principal else None,
                   csrf=principal.session.csrf if principal and principal.session else "",
                   reveals=(the_store.reveal_count(principal.session.id)
                            if principal and principal.session else 0))
        return templates.TemplateResponse(request, name, ctx, headers=PAGE_HEADERS)

    def cookie(response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict",
                            secure=settings.secure_cookies, path="/")

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return RedirectResponse("/review", status_code=303)

    @app.get("/login", include_in_schema=False)
    def login_form(request: Request, error: str | None = None) -> Response:
        token = secrets.token_urlsafe(24)
        resp = page(request, "login.html", None, login_csrf=token, error=error)
        cookie(resp, LOGIN_CSRF_COOKIE, token, 600)
        return resp

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await request.form()
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        sent = str(form.get("csrf") or "")
        if not expected or not secrets.compare_digest(sent, expected):
            raise HTTPException(403, "missing or wrong CSRF token (reload the sign-in page)")
        secret = str(form.get("token") or "").strip()
        tok = await run_in_threadpool(the_store.token_for, secret) if secret else None
        if tok is None:
            return RedirectResponse("/login?error=unknown+or+revoked+token", status_code=303)
        sid, _csrf = await run_in_threadpool(the_store.create_session, tok, ttl=settings.session_hours * 3600)
        resp = RedirectResponse("/review", status_code=303)
        cookie(resp, SESSION_COOKIE, sid, int(settings.session_hours * 3600))
        resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return resp

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, principal: Principal = Depends(authenticate)) -> Response:
        sid = request.cookies.get(SESSION_COOKIE)
        if sid:
            the_store.end_session(sid)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp

    @app.get("/review", include_in_schema=False)
    def queue_page(request: Request, review: str = "", category: str = "", model: str = "", since: str = "",
                   until: str = "", sort: str = "score_desc", show: str = "queue",
                   principal: Principal = Depends(authenticate)) -> Response:
        require(principal, "moderate")
        f = ItemFilter(queue=show == "queue", review=review or None, category=category or None,
                       model=model or None, since=_parse_date(since, "since"), until=_parse_date(until, "until"),
                       sort=sort, limit=200, status=None if show == "queue" else "done")
        rows, total = the_store.items(f)
        return page(request, "queue.html", principal, rows=rows, total=total, facets=the_store.facets(),
                    filters={"review": review, "category": category, "model": model, "since": since,
                             "until": until, "sort": sort, "show": show},
                    review_states=REVIEW_STATES, counts=the_store.job_counts())

    @app.get("/review/{item_id}", include_in_schema=False)
    def item_page(request: Request, item_id: str, principal: Principal = Depends(authenticate)) -> Response:
        require(principal, "moderate")
        item, job = the_store.item(item_id)
        rows, _ = the_store.items(ItemFilter(queue=True, limit=500))
        ids = [i.id for i, _ in rows]
        nxt = ids[(ids.index(item_id) + 1) % len(ids)] if item_id in ids and len(ids) > 1 else (
            ids[0] if ids and item_id not in ids else None)
        return page(request, "item.html", principal, item=item, job=job, rec=item.result or {},
                    decisions=the_store.decisions(item_id), next_id=nxt,
                    can_correct="segments" in (item.blobs or {}))

    return app


def _validate(data: bytes, max_pixels: int) -> str:
    """Decode the upload fully (by content) under the pixel limit; returns its format."""
    from PIL import Image

    from veil.image import load_image

    load_image(data, max_pixels=max_pixels)  # raises NotAnImageError / InvalidImageError
    with Image.open(io.BytesIO(data)) as im:
        return str(im.format or "unknown")
