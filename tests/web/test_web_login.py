"""The login page in real Chromium: a page request without a token lands there, a token opens the dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import pytest

from server.auth.tokens import Scope, TokenEntry, digest
from tests.support.browser import BrowserPage, LiveServer, browser, browser_page, serving

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext as Context
    from playwright.sync_api import Dialog

__all__ = ["browser", "browser_page"]  # fixtures, used by name

READ_TOKEN = "sy_read_token_for_the_browser_test"


@pytest.fixture(scope="module")
def secured_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    database = tmp_path_factory.mktemp("login") / "stackyard.db"
    entries = [TokenEntry(name="browser", scopes=[Scope.READ], sha256=digest(READ_TOKEN))]
    with serving(f"sqlite:///{database}", auth_tokens=entries) as live:
        yield live


def test_login_sets_an_http_only_cookie_and_returns_to_the_page(
    secured_server: LiveServer, browser: Context, browser_page: BrowserPage
) -> None:
    browser.clear_cookies()
    page = browser_page.page
    page.goto(f"{secured_server.url}/index.html")
    page.wait_for_url("**/login.html?next=%2Findex.html")
    assert page.locator("#login-form").is_visible()

    page.fill("#token", "not-a-token")
    page.click("#login-submit")
    page.wait_for_selector("#login-error:not([hidden])")
    assert "not accepted" in page.inner_text("#login-error")
    assert browser.cookies() == []

    page.fill("#token", READ_TOKEN)
    page.click("#login-submit")
    page.wait_for_url(f"{secured_server.url}/index.html")
    page.wait_for_selector("header.app-header")
    cookies = [c for c in browser.cookies() if c["name"] == "stackyard_token"]
    assert len(cookies) == 1
    assert cookies[0]["httpOnly"] is True and cookies[0]["sameSite"] == "Strict" and cookies[0]["secure"] is False
    assert page.evaluate("document.cookie") == ""  # page scripts never see the token
    status = page.evaluate("fetch('/api/v1/series').then(r => r.status)")
    assert status == 200
    denied = page.evaluate("fetch('/api/v1/targets', {method: 'POST', body: '{}'}).then(r => r.status)")
    assert denied == 403
    assert browser_page.errors == [] or all("403" in e or "401" in e for e in browser_page.errors)

    page.evaluate("fetch('/api/v1/logout', {method: 'POST'})")
    page.goto(f"{secured_server.url}/")
    page.wait_for_url("**/login.html?next=%2F")


def test_next_cannot_leave_the_site(secured_server: LiveServer, browser: Context, browser_page: BrowserPage) -> None:
    browser.clear_cookies()
    page = browser_page.page
    page.goto(f"{secured_server.url}/login.html?next=//evil.example/")
    page.fill("#token", READ_TOKEN)
    page.click("#login-submit")
    page.wait_for_url(f"{secured_server.url}/")
    assert page.url == f"{secured_server.url}/"


# ?next= as typed into the address bar (already percent-encoded where a link would encode it).
OFF_SITE_NEXTS = [
    "%2F%09%2Fevil.example",  # the reported attack: "/<tab>/evil.example"; the URL parser drops the tab
    "//evil.example/",
    "/%5Cevil.example",  # "/\\evil.example": a backslash is a slash to the URL parser
    "%5C%5Cevil.example",
    "%2F%0A%2Fevil.example",  # newline
    "%2F%0D%2Fevil.example",  # carriage return
    "%20//evil.example",  # leading space, trimmed by the parser
    "/.//evil.example",  # dot segments: the path becomes "//evil.example", still on this origin
    "https://evil.example/",
    "http:evil.example",
    "javascript:alert(document.domain)",
    "data:text/html,<script>alert(1)</script>",
]


@pytest.mark.parametrize("next_", OFF_SITE_NEXTS)
def test_next_cannot_leave_the_site_after_the_browsers_normalisation(
    secured_server: LiveServer, browser: Context, browser_page: BrowserPage, next_: str
) -> None:
    browser.clear_cookies()
    page = browser_page.page
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(f"{secured_server.url}/login.html?next={next_}")
    page.fill("#token", READ_TOKEN)
    page.click("#login-submit")
    page.wait_for_url(lambda url: "/login.html" not in url)
    page.wait_for_load_state()
    # Same origin, whatever the text: some variants resolve to a path here ("http:evil.example" is the
    # relative path "evil.example" to an http: page; "/.//evil.example" is the path "//evil.example", kept
    # as an absolute URL so it is never read again as protocol-relative), the rest to the dashboard.
    landed = urlsplit(page.url)
    assert f"{landed.scheme}://{landed.netloc}" == secured_server.url
    assert "evil.example" not in landed.netloc
    assert dialogs == []  # no script ran from ?next=


def test_next_keeps_a_same_origin_page_with_its_state(
    secured_server: LiveServer, browser: Context, browser_page: BrowserPage
) -> None:
    browser.clear_cookies()
    page = browser_page.page
    target = "/explore?type=heap&query=%7Bservice%3D%22demo%22%7D#top"
    page.goto(f"{secured_server.url}/login.html?next={quote(target, safe='')}")
    page.fill("#token", READ_TOKEN)
    page.click("#login-submit")
    page.wait_for_url(f"{secured_server.url}{target}")
    # And the function itself, on variants the form need not be submitted for.
    results = page.evaluate(
        """async (inputs) => {
            const { safeNext } = await import('/js/login.js');
            return inputs.map((raw) => safeNext(raw));
        }""",
        ["/targets", "targets", "?x=1", "/a/../b", "//evil.example", "/\\t/evil", "https://evil.example", ""],
    )
    base = secured_server.url
    assert results == [f"{base}/targets", f"{base}/targets", f"{base}/?x=1", f"{base}/b", *[f"{base}/"] * 4]
