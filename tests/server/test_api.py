"""The HTTP API against a real uvicorn process, on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.hostile import magenta_pixels
from tests.server.conftest import Served, flagged_png, safe_png
from tests.service_fixtures import wait_status
from veil.store import ItemFilter


@pytest.fixture(scope="module")
def item(served: Served) -> dict[str, Any]:
    """A processed, flagged image submitted by ``submitter``."""
    with served.client("submitter") as c:
        r = c.post("/v1/images", files={"image": ("photo.jpg", flagged_png(), "image/jpeg")})
        assert r.status_code == 202, r.text
        return wait_status(c, r.json()["id"])


def test_submit_sniffs_the_content_and_returns_the_results_record(served: Served, item: dict[str, Any]) -> None:
    assert item["status"] == "done"
    rec = item["result"]
    # the results.jsonl record, with its keys, and the routes that serve its files
    for key in ("path", "unsafe", "scores", "counterfactual_found", "depth", "obfuscated_fraction", "scores_after",
                "output", "mask", "fail_closed", "error", "regions", "sha256"):
        assert key in rec
    assert rec["path"] == "photo.jpg" and rec["unsafe"] and rec["counterfactual_found"] and not rec["fail_closed"]
    assert rec["output"] == f"/v1/images/{item['id']}/delivered"
    got, _ = served.store.item(item["id"])
    assert got.original_format == "PNG"  # named .jpg, sent as image/jpeg: the bytes say PNG
    assert item["needs_review"] and item["categories"] == ["unsafe"] and item["models"] == ["magenta"]
    with served.client("submitter") as c:
        delivered = c.get(rec["output"])
        assert delivered.headers["content-type"] == "image/png"
        arr = np.asarray(Image.open(io.BytesIO(delivered.content)).convert("RGB"))
        assert magenta_pixels(arr) == 0  # the delivered image hides what was flagged
        import hashlib

        assert hashlib.sha256(delivered.content).hexdigest() == item["delivered_sha256"] == rec["delivered_sha256"]
        mask = np.asarray(Image.open(io.BytesIO(c.get(rec["mask"]).content)))
        assert 0 < (mask > 0).mean() < 0.5


# -- every route against every role -------------------------------------------------------------
ROUTES = [
    ("POST", "/v1/images", "submit"),
    ("GET", "/v1/images/{id}", "read"),
    ("GET", "/v1/images/{id}/delivered", "read"),
    ("GET", "/v1/images/{id}/mask", "read"),
    ("GET", "/v1/images/{id}/overlays/attribution", "read"),
    ("GET", "/v1/items", "list"),
    ("POST", "/v1/items/{id}/decision", "moderate"),
    ("POST", "/v1/items/decisions", "moderate"),
    ("POST", "/v1/items/{id}/reveal", "moderate"),
    ("GET", "/v1/items/{id}/original", "moderate"),
    ("POST", "/v1/items/{id}/mask/preview", "moderate"),
    ("POST", "/v1/items/{id}/mask", "moderate"),
    ("POST", "/v1/tokens", "admin"),
    ("GET", "/v1/tokens", "admin"),
    ("DELETE", "/v1/tokens/{token}", "admin"),
    ("GET", "/v1/audit", "admin"),
    ("GET", "/review", "moderate"),
    ("GET", "/review/{id}", "moderate"),
]
ALLOWED = {"submit": {"submitter", "other"}, "read": {"submitter", "moderator"},
           "list": {"submitter", "other", "moderator"}, "moderate": {"moderator"}, "admin": {"admin"}}


@pytest.mark.parametrize("who", [None, "submitter", "other", "moderator", "admin"])
@pytest.mark.parametrize(("method", "path", "perm"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_every_route_checks_the_role(served: Served, item: dict[str, Any], who: str | None, method: str,
                                     path: str, perm: str) -> None:
    iid = item["id"]
    kw: dict[str, Any] = {}
    params: dict[str, str] = {}
    if path == "/v1/images":
        kw["files"] = {"image": ("x.png", safe_png(3), "image/png")}
    elif path.endswith("/decision"):
        kw["json"] = {"action": "escalate", "reason": "auth matrix"}
    elif path.endswith("/decisions"):
        kw["json"] = {"ids": [iid], "action": "escalate"}
    elif path.endswith("/reveal"):
        kw["json"] = {"reason": "auth matrix"}
    elif path.endswith("/original"):
        with served.client("moderator") as m:  # a valid grant, so only the role decides
            params["grant"] = m.post(f"/v1/items/{iid}/reveal", json={"reason": "auth matrix"}).json()["url"].split("=", 1)[1]
    elif path.endswith("/mask/preview") or path.endswith("/mask"):
        kw["json"] = {}
    elif path == "/v1/tokens" and method == "POST":
        kw["json"] = {"name": "made", "role": "submitter"}
    url = path.format(id=iid, token=served.store.create_token("victim", "submitter")[0].id if "{token}" in path else "")
    with served.client(who) as c:
        r = c.request(method, url, params=params, **kw)
    if who is None and url.startswith("/review"):
        assert r.status_code == 303 and r.headers["location"] == "/login"  # pages send people to sign in
    elif who is None:
        assert r.status_code == 401, r.text
        assert "Bearer" in r.json()["error"] or "token" in r.json()["error"]
    elif who in ALLOWED[perm]:
        assert r.status_code < 400, (who, method, url, r.status_code, r.text)
    else:
        assert r.status_code == 403, (who, method, url, r.status_code, r.text)
        assert "error" in r.json()


def test_submitters_see_only_their_own_items(served: Served, item: dict[str, Any]) -> None:
    with served.client("other") as c:
        assert c.get(f"/v1/images/{item['id']}").status_code == 403
        listed = c.get("/v1/items").json()["items"]
        assert item["id"] not in [i["id"] for i in listed]
    with served.client("submitter") as c:
        assert item["id"] in [i["id"] for i in c.get("/v1/items").json()["items"]]


# -- uploads ------------------------------------------------------------------------------------
def _stored(served: Served) -> tuple[int, int]:
    blobs = sum(1 for p in served.store.blobs.root.rglob("*") if p.is_file())
    return blobs, served.store.items(ItemFilter(limit=1))[1]


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (3000, 3000)).save(buf, "PNG")  # 9 megapixels in a few kB; the test server allows 4
    return buf.getvalue()


BAD_UPLOADS = {
    "zero bytes": (b"", 422, "empty"),
    "not an image": (b"hello, this is text", 415, "not a recognised image"),
    "truncated": (flagged_png()[:200], 422, "cannot"),
    "decompression bomb": (_bomb(), 422, "pixels"),
    "too large": (np.random.default_rng(0).bytes(2 * 1024 * 1024 + 10), 413, "limit"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_uploads_are_refused_clearly_and_store_nothing(served: Served, case: str) -> None:
    data, status, words = BAD_UPLOADS[case]
    before = _stored(served)
    with served.client("submitter") as c:
        r = c.post("/v1/images", files={"image": ("photo.png", data, "image/png")})
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    assert _stored(served) == before


def test_no_route_fetches_urls_or_takes_other_bodies(served: Served) -> None:
    before = _stored(served)
    with served.client("submitter") as c:
        r = c.post("/v1/images", json={"url": "http://127.0.0.1:1/secret.png"})
        assert r.status_code == 415 and "multipart" in r.json()["error"]
        r = c.post("/v1/images", files={"picture": ("a.png", safe_png(), "image/png")})
        assert r.status_code == 422 and "'image'" in r.json()["error"]
    assert _stored(served) == before


# -- review ---------------------------------------------------------------------------------------
def test_every_reveal_is_audited_and_grants_are_single_use(served: Served, item: dict[str, Any]) -> None:
    iid = item["id"]
    with served.client("moderator") as m, served.client("admin") as a:
        assert m.post(f"/v1/items/{iid}/reveal", json={"reason": ""}).status_code == 422
        assert m.get(f"/v1/items/{iid}/original", params={"grant": "made-up"}).status_code == 403
        before = [json.loads(line) for line in a.get("/v1/audit").text.splitlines()]
        urls = [m.post(f"/v1/items/{iid}/reveal", json={"reason": f"case 41{k}"}).json()["url"] for k in range(2)]
        original = m.get(urls[0])
        assert original.status_code == 200 and original.content == flagged_png()
        assert original.headers["cache-control"] == "no-store"
        assert m.get(urls[0]).status_code == 403  # used
        events = [json.loads(line) for line in a.get("/v1/audit", params={"action": "reveal"}).text.splitlines()]
        new = [e for e in events if e["id"] > max(b["id"] for b in before)]
        assert [(e["actor"], e["role"], e["item_id"], e["reason"]) for e in new] == [
            ("moderator", "moderator", iid, "case 410"), ("moderator", "moderator", iid, "case 411")]
        rows = list(csv.DictReader(io.StringIO(a.get("/v1/audit", params={"format": "csv"}).text)))
        assert {"case 410", "case 411"} <= {r["reason"] for r in rows if r["action"] == "reveal"}
        served_events = a.get("/v1/audit", params={"action": "original_served", "item_id": iid}).text.splitlines()
        assert len(served_events) >= 1


def _decode(data_url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB"))


def test_mask_correction_is_verified_before_it_is_saved(served: Served) -> None:
    with served.client("submitter") as c:
        iid = c.post("/v1/images", files={"image": ("c.png", flagged_png(5), "image/png")}).json()["id"]
        wait_status(c, iid)
    with served.client("moderator") as m:
        current = m.post(f"/v1/items/{iid}/mask/preview", json={})
        assert current.status_code == 200, current.text
        cur = current.json()
        assert cur["unsafe"] is False and cur["segments"]
        labels_all = set(range(0, 64))
        others = sorted(labels_all - set(cur["segments"]))[:1]
        # hiding only a region away from the patch: judged unsafe again, and it cannot be saved
        worse = m.post(f"/v1/items/{iid}/mask/preview", json={"segments": others}).json()
        assert worse["unsafe"] is True
        assert magenta_pixels(_decode(worse["preview"])) == 0  # un-hidden pixels are not sent before saving
        refused = m.post(f"/v1/items/{iid}/mask", json={"segments": others})
        assert refused.status_code == 409 and "still classified unsafe" in refused.json()["error"]
        assert m.post(f"/v1/items/{iid}/mask", json={"segments": []}).status_code == 400
        saved = m.post(f"/v1/items/{iid}/mask", json={"segments": cur["segments"], "reason": "tidy"})
        assert saved.status_code == 200, saved.text
        assert saved.json()["result"]["corrected"] is True
    with served.client("admin") as a:
        events = [json.loads(x) for x in a.get("/v1/audit", params={"item_id": iid, "action": "mask_correction"}).text.splitlines()]
    assert len(events) == 1 and events[0]["reason"] == "tidy" and events[0]["detail"]["unsafe_after"] is False


def test_decisions_single_and_bulk(served: Served) -> None:
    with served.client("submitter") as c:
        ids = [c.post("/v1/images", files={"image": (f"{k}.png", flagged_png(10 + k), "image/png")}).json()["id"]
               for k in range(2)]
        for i in ids:
            wait_status(c, i)
    with served.client("moderator") as m:
        assert m.post(f"/v1/items/{ids[0]}/decision", json={"action": "ban"}).status_code == 400
        assert m.post(f"/v1/items/{ids[0]}/decision", json={"action": "overturn"}).json()["review"] == "overturned"
        r = m.post("/v1/items/decisions", json={"ids": ids, "action": "confirm", "reason": "bulk"})
        assert r.json() == {"decided": 2, "action": "confirm"}
        queue = [i["id"] for i in m.get("/v1/items", params={"queue": "true", "limit": 500}).json()["items"]]
        assert not set(ids) & set(queue)
        assert m.post("/v1/items/decisions", json={"ids": [ids[0], "nope"], "action": "escalate"}).status_code == 404
        assert m.get(f"/v1/images/{ids[0]}").json()["review"] == "confirmed"  # all or none


def test_tokens_are_shown_once(served: Served) -> None:
    with served.client("admin") as a:
        made = a.post("/v1/tokens", json={"name": "carol", "role": "moderator"}).json()
        assert made["token"].startswith("veil_")
        listed = a.get("/v1/tokens").json()["tokens"]
        assert all("token" not in t and "token_hash" not in t for t in listed)
        assert a.post("/v1/tokens", json={"name": "x", "role": "root"}).status_code == 400
    with served.client() as c:
        assert c.get("/v1/items", headers={"Authorization": f"Bearer {made['token']}"}).status_code == 200


def test_page_sign_in_sets_strict_httponly_cookie_and_requires_csrf(served: Served, item: dict[str, Any]) -> None:
    with served.client() as c:
        assert c.get("/review").status_code == 303  # to the sign-in page
        form = c.get("/login")
        login_csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        assert c.post("/login", data={"token": served.tokens["moderator"], "csrf": "wrong"}).status_code == 403
        r = c.post("/login", data={"token": served.tokens["moderator"], "csrf": login_csrf})
        assert r.status_code == 303
        cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("veil_session="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        page = c.get(f"/review/{item['id']}")
        assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
        assert f"/v1/items/{item['id']}/original" not in page.text
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        url = f"/v1/items/{item['id']}/decision"
        assert c.post(url, json={"action": "escalate"}).status_code == 403
        assert c.post(url, json={"action": "escalate"}, headers={"X-CSRF-Token": "nope"}).status_code == 403
        assert c.post(url, json={"action": "escalate"}, headers={"X-CSRF-Token": csrf}).status_code == 200
        assert c.post("/logout", data={"csrf": csrf}).status_code == 303
        assert c.post(url, json={"action": "escalate"}, headers={"X-CSRF-Token": csrf}).status_code == 401


def test_healthz_and_openapi(served: Served) -> None:
    with served.client() as c:
        assert c.get("/healthz").json()["ok"] is True
        paths = c.get("/openapi.json").json()["paths"]
        assert "/v1/images" in paths and "multipart/form-data" in paths["/v1/images"]["post"]["requestBody"]["content"]
        assert "/v1/audit" in paths


def test_image_of_another_format_is_accepted(served: Served) -> None:
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(safe_png(7))).save(jpeg, "JPEG")
    with served.client("submitter") as c:
        r = c.post("/v1/images", files={"image": ("x.bin", jpeg.getvalue(), "application/octet-stream")})
        assert r.status_code == 202
        body = wait_status(c, r.json()["id"])
    assert body["status"] == "done" and body["result"]["unsafe"] is False
    assert served.store.item(body["id"])[0].original_format == "JPEG"


def test_api_docs_page_needs_no_network(served: Served) -> None:
    """/docs is served from the installed swagger-ui-bundle files, not a CDN (the service runs offline)."""
    with served.client() as c:
        page = c.get("/docs")
        assert page.status_code == 200
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert assets and all(a.startswith("/docs-assets/") for a in assets), assets
        for a in assets:
            assert c.get(a).status_code == 200, a
        assert c.get("/openapi.json").json()["info"]["title"] == "Veil moderator service"
