"""The web UI in a real browser: Playwright drives Debian's chromium against a running lanner.

The browser only loads the admin UI (with --no-proxy-server: it never browses
through the proxy); traffic goes through lanner from httpx, and the lanner under
test denies every destination but 127.0.0.1 anyway.

Screenshots are written to each test's pytest tmp dir (`<tmp_path>/screenshots/`,
kept by pytest for the last three runs) and copied to `$TEST_ARTIFACTS/web-ui/`
(default `tests/artifacts/web-ui/` in the checkout, ignored by git), where CI
keeps them. A failed test also leaves a `failed-<test>.png` there.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lanner.record.model import ConnectionRecord, FlowRecord
from lanner.record.sqlite import SqliteStore
from tests.conftest import require, require_binary
from tests.integration.servers import Origin
from tests.integration.store_reads import wait_flows

try:
    from playwright.sync_api import Page, Playwright, expect, sync_playwright
except ImportError:  # reported by the fixture: a skip locally, a failure in CI
    sync_playwright = None

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",  # the UI is loaded directly, never through a proxy (not even one from the env)
]
LOOPBACK_ONLY = {"rules": [{"action": "allow", "cidrs": ["127.0.0.1/32"]}, {"action": "deny"}]}
WAIT_MS = 10_000
FLOW_ROWS = "#flows tr[data-flow-id]"
MARKUP = '<img src=x onerror="window.injected = 1">hello-ui'  # shown as text, never run


@pytest.fixture(scope="module")
def driver() -> Iterator[Playwright]:
    require_binary("chromium")
    require(sync_playwright is not None, "playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture
def shots(tmp_path: Path) -> Callable[[Page, str], Path]:
    """Take a screenshot: into the test's tmp dir, and a copy into $TEST_ARTIFACTS/web-ui/."""
    artifacts = os.environ.get("TEST_ARTIFACTS") or str(Path(__file__).parents[1] / "artifacts")

    def take(page: Page, name: str) -> Path:
        path = tmp_path / "screenshots" / f"{name}.png"
        path.parent.mkdir(exist_ok=True)
        page.screenshot(path=path)
        if artifacts:
            target = Path(artifacts) / "web-ui"
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target / path.name)
        return path

    return take


@pytest.fixture
def page(driver: Playwright, tmp_path: Path, request: pytest.FixtureRequest, shots: Any) -> Iterator[Page]:
    """A tab in a fresh chromium profile; the test fails if the page throws."""
    context = driver.chromium.launch_persistent_context(
        user_data_dir=tmp_path / "chromium-profile",
        executable_path=shutil.which("chromium"),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 900},
    )
    context.set_default_timeout(WAIT_MS)
    tab = context.pages[0] if context.pages else context.new_page()
    errors: list[str] = []
    console: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    try:
        yield tab
        call = getattr(request.node, "report_call", None)
        if call is not None and call.failed:
            print(f"--- browser console at {tab.url} ---", *console[-50:], sep="\n")
            shots(tab, f"failed-{request.node.name}")
    finally:
        context.close()
    assert not errors, f"the page threw: {errors}"


def proxied(lanner: Any, origin: Origin, path: str, **kwargs: Any) -> httpx.Response:
    with httpx.Client(proxy=lanner.http_proxy, timeout=10) as client:
        return client.get(f"http://127.0.0.1:{origin.port}{path}", **kwargs)


def shown_ids(page: Page) -> list[int]:
    return [
        int(value)
        for value in page.eval_on_selector_all(FLOW_ROWS, "rows => rows.map(r => r.dataset.flowId)")
    ]


def apply_filter(page: Page, text: str) -> None:
    page.fill("#filter", text)
    page.press("#filter", "Enter")


def test_flows_arrive_live_filter_and_open_in_the_detail_pane(
    start_lanner: Any, origin: Origin, page: Page, shots: Any
) -> None:
    lanner = start_lanner(LOOPBACK_ONLY)
    proxied(lanner, origin, "/small?tag=before")
    wait_flows(lanner.store_path, 1)
    page.goto(f"{lanner.admin_url}/ui/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    expect(page.locator(FLOW_ROWS)).to_have_count(1)
    page.evaluate("window.notReloaded = true")

    # Live: new flows go on top without a reload.
    proxied(lanner, origin, "/headers?tag=live", headers={"X-Ui-Test": MARKUP})
    proxied(lanner, origin, "/status?code=503&tag=bad")
    proxied(lanner, origin, "/gzip?tag=gz")
    expect(page.locator(FLOW_ROWS)).to_have_count(4)
    expect(page.locator(FLOW_ROWS).first).to_contain_text("/gzip?tag=gz")
    ids = shown_ids(page)
    assert ids == sorted(ids, reverse=True)
    assert page.evaluate("window.notReloaded") is True

    # A bad filter shows the API's message and leaves the list alone.
    apply_filter(page, "status:>=")
    expect(page.locator("#filter-error")).to_be_visible()
    expect(page.locator("#filter-error")).to_contain_text("status")
    expect(page.locator(FLOW_ROWS)).to_have_count(4)

    apply_filter(page, "status:>=500")
    expect(page.locator(FLOW_ROWS)).to_have_count(1)
    expect(page.locator("#filter-error")).to_be_hidden()
    expect(page.locator(FLOW_ROWS).first).to_contain_text("503")
    assert "filter=status" in page.url  # a reload or a shared link keeps the filter
    har = httpx.get(page.get_attribute("#export-har", "href") or "", timeout=10).json()
    assert [entry["response"]["status"] for entry in har["log"]["entries"]] == [503]

    # The stream follows the filter: only matching flows arrive.
    apply_filter(page, "url:*tag=live*")
    expect(page.locator(FLOW_ROWS)).to_have_count(1)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    proxied(lanner, origin, "/small?tag=other")
    proxied(lanner, origin, "/small?tag=live2")
    expect(page.locator(FLOW_ROWS)).to_have_count(2)
    expect(page.locator(FLOW_ROWS).first).to_contain_text("tag=live2")

    # Pause holds new flows back; resume shows them.
    page.click("#pause")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "paused")
    proxied(lanner, origin, "/small?tag=live3")
    expect(page.locator("#live-status")).to_contain_text("1 new")
    expect(page.locator(FLOW_ROWS)).to_have_count(2)
    page.click("#pause")
    expect(page.locator(FLOW_ROWS)).to_have_count(3)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")

    # The detail pane: headers as sent, the JSON body pretty-printed.
    page.locator(FLOW_ROWS, has_text="/headers?tag=live").click()
    detail = page.locator("#detail")
    expect(detail).to_be_visible()
    expect(detail.locator("[data-section=summary]")).to_contain_text("200")
    expect(detail.locator("[data-section=request-headers]")).to_contain_text("X-Ui-Test")
    expect(detail.locator("[data-section=request-headers]")).to_contain_text(MARKUP)  # as text, not HTML
    expect(detail.locator("[data-section=response-body] pre")).to_contain_text('"x-ui-test": "<img src=x')
    expect(detail.locator("[data-section=response-body] pre")).to_contain_text("\n  ")  # pretty-printed
    assert page.evaluate("window.injected") is None
    expect(detail.locator("[data-section=connection]")).to_contain_text("127.0.0.1")
    shots(page, "flows-detail")

    page.click("[data-tab=connections]")
    expect(page.locator("#listeners")).to_contain_text("forward")
    page.click("[data-tab=stats]")
    expect(page.locator("#stats")).to_contain_text("flows")
    expect(page.locator("#stats-filter")).to_have_text("url:*tag=live*")
    page.click("[data-tab=upstreams]")
    expect(page.locator("#panel-upstreams")).to_be_visible()
    expect(page.locator("#panel-upstreams .panel-message")).to_be_empty()
    page.click("[data-tab=flows]")
    expect(page.locator(FLOW_ROWS)).to_have_count(3)


def bulk_flow(index: int, started: float) -> FlowRecord:
    return FlowRecord(
        "bulk.1",
        "http",
        started,
        "GET",
        host="127.0.0.1",
        port=8000,
        path=f"/bulk/{index}",
        status=200,
        reason="OK",
        response_ended=started + 0.002,
        listener="forward",
        client="127.0.0.1:1",
    )


def write_flows(path: Path, count: int, batch: int = 10_000) -> None:
    """`count` small HTTP flows written straight into the store (about 3 s for 100,000)."""
    store = SqliteStore(str(path))
    started = time.time() - count * 0.001
    try:
        store.write([ConnectionRecord("bulk.1", "forward", "127.0.0.1:1", "http", started, started + 1)], [])
        for first in range(0, count, batch):
            last = min(count, first + batch)
            store.write([], [bulk_flow(index, started + index * 0.001) for index in range(first, last)])
    finally:
        store.close()


def test_a_hundred_thousand_flows_page_with_a_bounded_table(
    start_lanner: Any, page: Page, tmp_path: Path, shots: Any
) -> None:
    total, cap, page_size = 100_000, 300, 100
    data_dir = tmp_path / "data"
    write_flows(data_dir / "lanner.db", total)
    lanner = start_lanner({**LOOPBACK_ONLY, "data_dir": str(data_dir)})

    began = time.monotonic()
    page.goto(f"{lanner.admin_url}/ui/?max_rows={cap}")
    expect(page.locator(FLOW_ROWS)).to_have_count(page_size)
    loaded = time.monotonic() - began
    assert loaded < 5, f"the first page took {loaded:.1f} s"
    assert shown_ids(page) == list(range(total, total - page_size, -1))
    expect(page.locator("#flow-count")).to_have_text(re.compile(r"100\D?000 flows"))

    # Older pages: rows past the cap leave at the top, and the list says it is off the live edge.
    for pages in range(2, 6):
        # A click that scrolls the button into view would also trigger the infinite scroll; this one does not.
        page.locator("#older").dispatch_event("click")
        expect(page.locator("#older")).to_have_text("Older")
        ids = shown_ids(page)
        assert len(ids) == min(pages * page_size, cap)
        assert ids[-1] == total - pages * page_size + 1
        assert ids == list(range(ids[0], ids[0] - len(ids), -1))  # contiguous, newest first
    expect(page.locator("#newest")).to_be_visible()

    # Scrolling to the bottom loads the next page by itself.
    bottom = shown_ids(page)[-1]
    page.locator("#flows-scroll").evaluate("scroller => { scroller.scrollTop = scroller.scrollHeight; }")
    expect(page.locator(FLOW_ROWS).last).to_have_attribute("data-flow-id", str(bottom - page_size))
    assert page.locator(FLOW_ROWS).count() == cap
    shots(page, "large-store-paged")

    # Back to the newest; then live flows push the oldest rows out at the bottom,
    # and paging older continues below the last row kept.
    page.click("#newest")
    expect(page.locator(FLOW_ROWS)).to_have_count(page_size)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    fill_more = 2 * cap
    write_flows(lanner.store_path, fill_more)  # while lanner runs: the stream finds them in the store
    expect(page.locator(FLOW_ROWS).first).to_have_attribute("data-flow-id", str(total + fill_more))
    ids = shown_ids(page)
    assert ids == list(range(total + fill_more, total + fill_more - cap, -1))
    page.locator("#older").dispatch_event("click")
    expect(page.locator(FLOW_ROWS).last).to_have_attribute(
        "data-flow-id", str(total + fill_more - cap - page_size + 1)
    )
    assert page.locator(FLOW_ROWS).count() == cap


def test_token_prompt_then_live_flows_and_closing_a_connection(
    start_lanner: Any, origin: Origin, page: Page
) -> None:
    token = "ui-test-token-0123456789"
    lanner = start_lanner({**LOOPBACK_ONLY, "admin": {"token": token}})
    page.goto(f"{lanner.admin_url}/ui/")
    expect(page.locator("#token-dialog")).to_be_visible()  # the first call answered 401
    page.fill("#token", "not-the-token-0123456789")
    page.click("#token-submit")
    expect(page.locator("#token-message")).to_contain_text("refused")
    page.fill("#token", token)
    page.click("#token-submit")
    expect(page.locator("#token-dialog")).to_be_hidden()
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")  # ?token= on the stream
    proxied(lanner, origin, "/small?tag=with-token")
    expect(page.locator(FLOW_ROWS)).to_have_count(1)

    with socket.create_connection(lanner.addr()) as client:  # open, silent: listed until closed
        client.settimeout(10)
        page.click("[data-tab=connections]")
        expect(page.locator("#connections tr")).to_have_count(1)
        page.click("#connections button")
        expect(page.locator("#panel-connections .panel-message")).to_contain_text("Closed")
        assert client.recv(1024) == b""
    expect(page.locator("#connections tr")).to_have_count(0)
