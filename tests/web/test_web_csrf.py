"""Same-site forgery replayed in real Chromium: a page on another port of the same host, and our own pages.

The finding: ``SameSite=Strict`` does not separate ports, so a page served on
127.0.0.1:OTHER is same-site with Stackyard on 127.0.0.1:PORT and its requests
carry the login cookie. It pushed a goroutine dump (``fetch`` in ``no-cors``
mode, any Content-Type) and could start a trace capture with a bodiless
form POST. Here a signed-in admin's browser opens such a page; both requests
must be refused, while the same write from the dashboard's own origin works.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import httpx
import pytest

from server.auth.tokens import Scope, TokenEntry, digest
from server.store.repository import Store
from tests.support.browser import BrowserPage, LiveServer, browser, browser_page, serving
from tests.support.tools import DATA

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext as Context

__all__ = ["browser", "browser_page"]  # fixtures, used by name

ADMIN = "sy_admin_token_for_the_csrf_browser_test"
DUMP = (DATA / "goroutine_debug2.txt").read_text()

ATTACK_PAGE = """<!doctype html>
<html><body>
<form id="trace" method="POST" action="{base}/api/v1/targets/{target}/trace" target="_top"></form>
<script>
  // What a page on another port can do with the visitor's cookie: push data, then a bodiless POST.
  fetch("{base}/api/v1/goroutines/ingest?service=forged", {{
    method: "POST", mode: "no-cors", credentials: "include", body: {dump}
  }}).finally(() => document.getElementById("trace").submit());
</script>
</body></html>
"""


class AttackSite:
    """A plain HTTP server on another loopback port serving the attack page."""

    def __init__(self, page: str) -> None:
        body = page.encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/attack.html"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    database = f"sqlite:///{tmp_path_factory.mktemp('csrf') / 'stackyard.db'}"
    entries = [TokenEntry(name="admin", scopes=[Scope.ADMIN], sha256=digest(ADMIN))]
    with serving(database, auth_tokens=entries) as live:
        yield live, database


def dump_services(database: str) -> set[str]:
    store = Store.from_url(database)
    try:
        return {s.labels["service"] for s in store.series.all() if s.kind == "goroutine_dump"}
    finally:
        store.close()


def test_a_page_on_another_port_cannot_write_with_the_cookie(
    secured: tuple[LiveServer, str], browser: Context, browser_page: BrowserPage
) -> None:
    live, database = secured
    headers = {"Authorization": f"Bearer {ADMIN}"}
    created = httpx.post(
        f"{live.url}/api/v1/targets", json={"url": "http://127.0.0.1:9", "service": "t"}, headers=headers, timeout=30
    )
    assert created.status_code == 201
    browser.clear_cookies()
    page = browser_page.page
    page.goto(f"{live.url}/login.html?next=%2Ftargets")
    page.fill("#token", ADMIN)
    page.click("#login-submit")
    page.wait_for_url(f"{live.url}/targets")

    # The dashboard's own origin: the same push with the cookie is accepted.
    own = page.evaluate(
        """async ({dump}) => {
            const response = await fetch('/api/v1/goroutines/ingest?service=own-page', {method: 'POST', body: dump});
            return response.status;
        }""",
        {"dump": DUMP},
    )
    assert own == 201

    site = AttackSite(ATTACK_PAGE.format(base=live.url, target=created.json()["id"], dump=json.dumps(DUMP)))
    try:
        page.goto(site.url)
        # The form's POST navigates the tab to Stackyard's answer.
        page.wait_for_url(f"{live.url}/api/v1/targets/{created.json()['id']}/trace")
        answer = json.loads(page.inner_text("body"))
    finally:
        site.close()
    assert answer["status"] == 403
    assert answer["error"] == (
        "cross-site request refused: Sec-Fetch-Site is 'same-site'; only same-origin pages may make this request"
    )
    assert dump_services(database) == {"own-page"}  # the forged push stored nothing
    # The cookie is still there and still works for the dashboard's reads.
    assert page.evaluate("fetch('/api/v1/targets').then(r => r.status)") == 200
