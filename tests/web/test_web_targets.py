"""Adding and editing scrape targets on the Targets page, in real headless Chromium.

One live server per module, built as ``stackyard serve --config`` builds it (the real
in-process scraper), with API tokens: an admin token to edit, a read-only token that the
server refuses with 403. Its targets: a real Go demo instance registered through the API
(editable) and a target from the config file (read-only: the API has no row to change).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from server.auth.tokens import Scope, TokenEntry, digest
from stackyard.runtime import build_server
from tests.support.browser import BrowserPage, LiveServer, browser, browser_page, require_browser, serving
from tests.support.fleet import closed_port_url
from tests.support.godemo import running
from tests.support.tools import go_binary
from tests.web.test_web_explore import no_errors

if TYPE_CHECKING:
    from playwright.sync_api import Locator

__all__ = ["browser", "browser_page"]  # fixtures, used by name

ADMIN_TOKEN = "sy_admin_token_for_the_targets_page_test"
READ_TOKEN = "sy_read_token_for_the_targets_page_test"
CONFIG_JOB = "configured"


@dataclass
class Site:
    live: LiveServer
    target: dict[str, Any]  # the API target, as created
    config_url: str  # the config file's target

    def api(self, token: str = ADMIN_TOKEN) -> httpx.Client:
        return httpx.Client(base_url=self.live.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def stored(self) -> dict[str, Any]:
        with self.api() as client:
            response = client.get(f"/api/v1/targets/{self.target['id']}")
            assert response.status_code == 200, response.text
            found: dict[str, Any] = response.json()
            return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_browser()
    go_binary()  # skips (or fails under STACKYARD_STRICT) without Go
    folder = tmp_path_factory.mktemp("targets")
    config_url = closed_port_url()
    config = folder / "stackyard.yaml"
    config.write_text(
        f"scrape_configs:\n  - job_name: {CONFIG_JOB}\n    scrape_interval: 1h\n"
        f'    static_configs:\n      - targets: ["{config_url}"]\n'
    )
    tokens = [
        TokenEntry(name="ops", scopes=[Scope.READ, Scope.ADMIN], sha256=digest(ADMIN_TOKEN)),
        TokenEntry(name="viewer", scopes=[Scope.READ], sha256=digest(READ_TOKEN)),
    ]
    with (
        running() as demo_url,
        serving(f"sqlite:///{folder / 'stackyard.db'}", lambda s: build_server(s, config), auth_tokens=tokens) as live,
    ):
        body = {"url": demo_url, "service": "shop", "labels": {"version": "1.4"}, "interval": "2s"}
        body["profiles"] = ["goroutine"]
        response = httpx.post(
            f"{live.url}/api/v1/targets", json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        )
        assert response.status_code == 201, response.text
        yield Site(live, response.json(), config_url)


def sign_in(bp: BrowserPage, site: Site, token: str) -> None:
    """Log in as the dashboard does: the server sets its HttpOnly cookie in the browser context."""
    bp.page.context.clear_cookies()
    response = bp.page.request.post(f"{site.live.url}/api/v1/login", data={"token": token})
    assert response.status == 200, response.text()


def open_editor(bp: BrowserPage, site: Site, token: str) -> tuple[Locator, Locator]:
    """Sign in with ``token``, open the Targets page and the API target's edit form: (its card, the form)."""
    sign_in(bp, site, token)
    bp.page.goto(f"{site.live.url}/targets")
    bp.page.wait_for_function("() => document.querySelectorAll('.target').length === 2")
    card = bp.page.locator(f".target[data-id='{site.target['id']}']")
    card.locator("button.edit").click()
    form = card.locator("form.target-edit")
    form.wait_for()
    return card, form


def test_edit_a_target_in_place(site: Site, browser_page: BrowserPage) -> None:
    bp = browser_page
    before = site.stored()
    card, form = open_editor(bp, site, ADMIN_TOKEN)
    # pre-filled with the target's current values
    assert form.locator("input[name=url]").input_value() == before["url"]
    assert form.locator("input[name=service]").input_value() == "shop"
    assert form.locator("input[name=labels]").input_value() == "version=1.4"
    assert form.locator("input[name=interval]").input_value() == before["interval"]
    assert form.locator("input[name=path_prefix]").input_value() == "/debug/pprof"
    checked = form.locator(".edit-kinds input:checked")
    assert [checked.nth(k).get_attribute("value") for k in range(checked.count())] == ["goroutine"]

    # a URL the server refuses: its own message in the form, the target unchanged
    form.locator("input[name=url]").fill("ftp://x")
    form.locator("button.save").click()
    error = form.locator(".edit-error")
    error.wait_for(state="visible")
    with site.api() as client:
        refused = client.patch(f"/api/v1/targets/{site.target['id']}", json={"url": "ftp://x"})
    assert refused.status_code == 422 and refused.json()["error"]
    assert error.inner_text() == refused.json()["error"]
    assert site.stored()["url"] == before["url"]
    assert form.is_visible()  # the input is kept to correct it

    # a new interval and a new label: saved, the card redrawn from the answer, the API agrees
    form.locator("input[name=url]").fill(before["url"])
    form.locator("input[name=interval]").fill("3s")
    form.locator("input[name=labels]").fill("version=1.4, team=shop")
    form.locator(".edit-kinds input[value=heap]").check()
    form.locator("button.save").click()
    form.wait_for(state="detached")
    stored = site.stored()
    assert stored["interval"] == "3s" and stored["interval"] != before["interval"]
    assert stored["labels"] == {"version": "1.4", "team": "shop"}
    assert stored["url"] == before["url"]
    assert [(p["type"], p["enabled"]) for p in stored["profiles"]] == [("goroutine", True), ("heap", True)]
    card = bp.page.locator(f".target[data-id='{site.target['id']}']")
    assert "every 3s" in card.locator(".target-head").inner_text()
    chips = card.locator(".target-labels .chip").all_inner_texts()
    assert chips == ["version=1.4", "team=shop"]
    assert "Saved shop" in bp.page.inner_text("#message")
    # a timeout set, then emptied again: the field empty means the default (null in the API)
    for timeout, stored_timeout in (("2s", "2s"), ("", None)):
        card.locator("button.edit").click()
        card.locator("form.target-edit input[name=timeout]").fill(timeout)
        card.locator("form.target-edit button.save").click()
        card.locator("form.target-edit").wait_for(state="detached")
        assert site.stored()["timeout"] == stored_timeout
    # Cancel leaves it as it is
    card.locator("button.edit").click()
    card.locator("form.target-edit input[name=interval]").fill("9s")
    card.locator("form.target-edit button.cancel").click()
    card.locator("form.target-edit").wait_for(state="detached")
    assert site.stored()["interval"] == "3s"
    no_errors(bp, allow=r"status of 422")


def test_config_file_targets_are_read_only(site: Site, browser_page: BrowserPage) -> None:
    bp = browser_page
    open_editor(bp, site, ADMIN_TOKEN)  # an API target's form open does not make the config target editable
    card = bp.page.locator(f".target[data-url='{site.config_url}']")
    with site.api() as client:
        listed = [t for t in client.get("/api/v1/targets").json()["targets"] if t["url"] == site.config_url]
    assert len(listed) == 1 and listed[0]["id"] is None and listed[0]["service"] == CONFIG_JOB
    edit = card.locator("button.edit")
    assert edit.is_disabled()
    assert "config file" in (edit.get_attribute("title") or "")
    assert "read-only" in card.locator(".read-only").inner_text()
    edit.click(force=True)  # a disabled button does nothing
    assert card.locator("form.target-edit").count() == 0
    assert card.locator("button.pause, button.remove").count() == 0
    no_errors(bp)


def test_a_read_only_token_sees_the_servers_refusal(site: Site, browser_page: BrowserPage) -> None:
    bp = browser_page
    before = site.stored()
    _, form = open_editor(bp, site, READ_TOKEN)
    form.locator("input[name=interval]").fill("7s")
    form.locator("button.save").click()
    error = form.locator(".edit-error")
    error.wait_for(state="visible")
    with site.api(READ_TOKEN) as client:
        refused = client.patch(f"/api/v1/targets/{site.target['id']}", json={"interval": "7s"})
    assert refused.status_code == 403
    assert error.inner_text() == refused.json()["error"]
    assert site.stored()["interval"] == before["interval"]
    assert bp.page.locator(".target").count() == 2  # the page still works
    no_errors(bp, allow=r"status of 403")


def visible_messages(bp: BrowserPage) -> list[str]:
    """Every message banner the user can see on the page."""
    texts: list[str] = bp.page.eval_on_selector_all(
        ".alert", "els => els.filter(e => e.offsetParent !== null).map(e => e.innerText.trim())"
    )
    return texts


def remove_target(site: Site, url: str) -> None:
    with site.api() as client:
        for t in client.get("/api/v1/targets").json()["targets"]:
            if t["url"] == url and t["id"] is not None:
                assert client.delete(f"/api/v1/targets/{t['id']}").status_code == 204


def test_the_forms_offer_every_profile_kind_of_the_server(site: Site, browser_page: BrowserPage) -> None:
    bp = browser_page
    with site.api() as client:
        kinds = client.get("/api/v1/profile-kinds").json()["kinds"]
    names = [k["name"] for k in kinds]
    assert "goroutine_dump" in names and "goroutineleak" in names
    _, form = open_editor(bp, site, ADMIN_TOKEN)
    # the edit form: every kind of the server's list, each explained on hover
    assert form.locator(".edit-kinds input").evaluate_all("bs => bs.map(b => b.value)") == names
    titles = form.locator(".edit-kinds label").evaluate_all("ls => ls.map(l => l.title)")
    assert titles == [k["description"] for k in kinds]
    form.locator("button.cancel").click()
    # the add form: the same list, the server's defaults checked
    boxes = bp.page.locator("#add-kinds input")
    assert boxes.evaluate_all("bs => bs.map(b => b.value)") == names
    assert boxes.evaluate_all("bs => bs.filter(b => b.checked).map(b => b.value)") == [
        k["name"] for k in kinds if k["default"]
    ]
    # a target added with the form as it comes gets leak detection: the dump and the leak profile are on
    url = closed_port_url()
    try:
        bp.page.fill("#add-url", url)
        bp.page.fill("#add-service", "leakcheck")
        # labels separated by spaces, one value quoted: three labels, never one long value
        bp.page.fill("#add-labels", 'env=prod version=1 team="web platform"')
        bp.page.click("#add-form button[type=submit]")
        bp.page.locator(f".target[data-url='{url}']").wait_for()
        with site.api() as client:
            (stored,) = [t for t in client.get("/api/v1/targets").json()["targets"] if t["url"] == url]
        assert [(p["type"], p["enabled"]) for p in stored["profiles"]] == [
            (k["name"], True) for k in kinds if k["default"]
        ]
        assert stored["labels"] == {"env": "prod", "version": "1", "team": "web platform"}
        assert visible_messages(bp) == [f"Added leakcheck {stored['instance']}."]
    finally:
        remove_target(site, url)
    no_errors(bp)


def test_a_label_list_that_is_not_name_value_is_refused(site: Site, browser_page: BrowserPage) -> None:
    bp = browser_page
    sign_in(bp, site, ADMIN_TOKEN)
    bp.page.goto(f"{site.live.url}/targets")
    bp.page.wait_for_function("() => document.querySelectorAll('#add-kinds input').length > 0")
    url = closed_port_url()
    bp.page.fill("#add-url", url)
    bp.page.fill("#add-service", "labels")
    for typed, says in (
        ("env=prod oops", 'labels: "oops" is not NAME=VALUE; separate labels with commas or spaces'),
        ('team="web platform', 'labels: the quoted value of "team" has no closing quote'),
        ("env=prod env=test", 'labels: "env" is given twice'),
    ):
        bp.page.fill("#add-labels", typed)
        bp.page.click("#add-form button[type=submit]")
        bp.page.wait_for_function(
            "(says) => document.querySelector('#message-text').textContent.startsWith(says)", arg=says
        )
        assert bp.page.get_attribute("#message", "data-kind") == "error"
        assert bp.page.inner_text("#message-title") == "The target was not added"
    with site.api() as client:
        assert all(t["url"] != url for t in client.get("/api/v1/targets").json()["targets"])  # nothing stored
    no_errors(bp)


def test_one_message_area_for_successes_and_refusals(site: Site, browser_page: BrowserPage) -> None:
    bp = browser_page
    card, form = open_editor(bp, site, ADMIN_TOKEN)
    form.locator("button.cancel").click()
    # a refusal
    bp.page.fill("#add-url", "ftp://example.invalid")
    bp.page.fill("#add-service", "extra")
    bp.page.click("#add-form button[type=submit]")
    bp.page.wait_for_function("() => document.querySelector('#message').dataset.kind === 'error'")
    with site.api() as client:
        reason = client.post("/api/v1/targets", json={"url": "ftp://example.invalid", "service": "extra"}).json()
    assert visible_messages(bp) == [f"The target was not added\n{reason['error']}"]
    # then a success: it replaces the refusal, never beside it
    try:
        card.locator("button.pause").click()
        bp.page.wait_for_function("() => document.querySelector('#message').dataset.kind === 'ok'")
        assert visible_messages(bp) == [f"Paused shop {site.target['instance']}."]
        assert site.stored()["paused"] is True
        # and a refusal replaces the success
        bp.page.click("#add-form button[type=submit]")
        bp.page.wait_for_function("() => document.querySelector('#message').dataset.kind === 'error'")
        assert visible_messages(bp) == [f"The target was not added\n{reason['error']}"]
    finally:
        with site.api() as client:
            client.patch(f"/api/v1/targets/{site.target['id']}", json={"paused": False})
    assert bp.page.locator(".alert").count() == 1  # one message area on the page
    no_errors(bp, allow=r"status of 422")
