"""The review page in headless Chromium (Playwright driving the system's browser).

Checks the network log: no original is requested before a reveal with a reason. With
``VEIL_SCREENSHOTS=1`` the queue and item screenshots in docs/images/ are rewritten.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hostile import MAGENTA, calm, with_patch
from tests.server.conftest import Served, png
from tests.service_fixtures import ROOT, wait_status

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("VEIL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install veil[dev])")
    if CHROMIUM is None:
        pytest.skip("no chromium binary on PATH (apt-get install chromium, or set VEIL_CHROMIUM)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], timeout=60_000)
        yield b
        b.close()


def shot_path(tmp_path: Path, name: str) -> Path:
    if os.environ.get("VEIL_SCREENSHOTS") == "1":
        return ROOT / "docs" / "images" / name
    return tmp_path / name


@pytest.fixture(scope="module")
def items(served: Served) -> dict[str, str]:
    """A flagged image, one near the threshold (two magenta pixels: score 0.5), and a safe one."""
    near = calm((160, 200), seed=31)
    near[10, 10] = near[40, 150] = MAGENTA
    images = {
        "beach.png": with_patch(calm((160, 200), seed=30)),
        "street.png": with_patch(calm((160, 200), seed=32), (60, 120, 50, 50)),
        "near.png": near,
        "park.png": calm((160, 200), seed=33),
    }
    out = {}
    with served.client("submitter") as c:
        for name, arr in images.items():
            out[name] = c.post("/v1/images", files={"image": (name, png(arr), "image/png")}).json()["id"]
        for i in out.values():
            assert wait_status(c, i)["status"] == "done"
    return out


@pytest.mark.parametrize("served", ["sqlite"], indirect=True)
def test_review_page_never_sends_an_original_before_a_reveal(served: Served, items: dict[str, str], browser: Any,
                                                             tmp_path: Path) -> None:
    from playwright.sync_api import expect  # waits without eval: the page's CSP forbids it

    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto(served.server.url + "/review")
    assert page.url.endswith("/login")
    page.fill("input[name=token]", served.tokens["moderator"])
    page.click("button[type=submit]")
    page.wait_for_url("**/review")
    cards = page.locator(".card")
    ids = [cards.nth(k).get_attribute("data-id") for k in range(cards.count())]
    assert items["beach.png"] in ids and items["near.png"] in ids and items["park.png"] not in ids
    cookies = {c["name"]: c for c in ctx.cookies()}
    assert cookies["veil_session"]["httpOnly"] and cookies["veil_session"]["sameSite"] == "Strict"
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(shot_path(tmp_path, "service-queue.png")))

    item = items["beach.png"]
    page.click(f".card[data-id='{item}'] .meta a")
    page.wait_for_url(f"**/review/{item}")
    page.wait_for_load_state("networkidle")
    page.keyboard.press("g")
    assert "greyscale" in (page.get_attribute("#view", "class") or "")
    page.keyboard.press("g")
    page.click(".tabs button[data-view=attribution]")
    page.wait_for_load_state("networkidle")
    page.click(".tabs button[data-view=delivered]")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(shot_path(tmp_path, "service-item.png")), full_page=True)
    assert not [u for u in requests if "/original" in u], "an original was requested before any reveal"
    assert any(u.endswith(f"/v1/images/{item}/delivered") for u in requests)

    # reveal: a reason is required, the reveal is logged, the count of reveals is shown
    page.fill("#reveal-reason", "checking a user report")
    with page.expect_response(lambda r: "/original" in r.url) as resp:
        page.click("#reveal-form button")
    assert resp.value.status == 200 and resp.value.headers["cache-control"] == "no-store"
    assert page.is_visible("#original")
    assert page.inner_text("#reveal-count") == "1"
    reveals = [e for e in served.store.audit_events(action="reveal", item_id=item)]
    assert reveals[-1].reason == "checking a user report" and reveals[-1].actor == "moderator"
    assert reveals[-1].detail["via"] == "page"

    # leaving the item hides it; coming back shows only the delivered image again
    page.keyboard.press("Escape")
    assert not page.is_visible("#original") and page.get_attribute("#original", "src") is None
    n_before = len(requests)
    page.goto(served.server.url + f"/review/{item}")
    page.wait_for_load_state("networkidle")
    assert not [u for u in requests[n_before:] if "/original" in u]
    assert not page.is_visible("#original")

    # keyboard decisions
    page.keyboard.press("e")
    expect(page.locator("#review-state")).to_have_text("escalated")
    assert served.store.item(item)[0].review == "escalated"

    # mask correction: the corrected image is judged before it can be saved
    page.keyboard.press("m")
    expect(page.locator("#verdict")).to_contain_text("after correction")
    assert page.inner_text("#verdict").startswith("safe")
    page.click("#save-mask")
    expect(page.locator("#status")).to_have_text("corrected mask saved")
    assert served.store.item(item)[0].corrections == 1

    # bulk confirm from the queue with the keyboard
    page.goto(served.server.url + "/review")
    page.wait_for_load_state("networkidle")
    n = page.locator(".card").count()
    assert n >= 2
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("x")
    assert page.inner_text("#n-selected") == "2"
    first_two = [page.locator(".card").nth(k).get_attribute("data-id") for k in range(2)]
    with page.expect_navigation():
        page.keyboard.press("Shift+C")
    assert all(served.store.item(i)[0].review == "confirmed" for i in first_two)
    assert not [u for u in requests if "/original" in u and f"/v1/items/{item}/" not in u]
    assert not errors, errors
    ctx.close()


def test_screenshots_are_committed() -> None:
    for name in ("service-queue.png", "service-item.png"):
        data = (ROOT / "docs" / "images" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
