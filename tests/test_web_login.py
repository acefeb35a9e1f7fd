"""The login page in real Chromium: a page request without a token lands there, a token opens the dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from server.auth.tokens import Scope, TokenEntry, digest
from tests.browser import BrowserPage, LiveServer, browser, browser_page, serving

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext as Context

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
