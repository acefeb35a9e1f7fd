"""The Alerts page in a real headless Chromium against a real server: states, rules, history, the rule form."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.alerts.service import Alerting
from server.settings import Settings
from server.store.repository import Store
from tests.support.browser import BrowserPage, LiveServer, browser, browser_page, serving
from tests.support.tools import DATA

__all__ = ["browser", "browser_page"]  # fixtures, used by name


def _send(live: LiveServer, method: str, path: str, body: object) -> Any:
    request = urllib.request.Request(
        f"{live.url}{path}", data=json.dumps(body).encode(), method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def alerting_server(tmp_path: Path) -> Iterator[tuple[LiveServer, str]]:
    database = f"sqlite:///{tmp_path / 'stackyard.db'}"
    with serving(database) as live:
        now = int(time.time())
        for instance, ago in (("a:6060", 20), ("b:6060", 10)):
            params = [("service", "checkout"), ("time", str(now - ago)), ("label", f"instance={instance}")]
            live.post("/api/v1/ingest", (DATA / "goroutine.pb.gz").read_bytes(), params)
        _send(live, "POST", "/api/v1/receivers", {"name": "oncall", "webhook_url": "http://127.0.0.1:9/hook"})
        rule = {
            "name": "ManyGoroutines",
            "query": '{service="checkout", instance="a:6060"}',
            "type": "goroutine",
            "expr": "value > 1",
            "receiver": "oncall",
            "annotations": {"summary": "{{ $value }} goroutines on {{ $labels.instance }}"},
        }
        _send(live, "POST", "/api/v1/rules", rule)
        yield live, database


def test_the_page_shows_states_rules_and_history(
    alerting_server: tuple[LiveServer, str], browser_page: BrowserPage
) -> None:
    live, database = alerting_server
    store = Store.from_url(database)
    try:  # one evaluation round, by an evaluator over the server's database (as another replica would run it)
        Alerting(store, Settings(database_url=database)).evaluator.evaluate()
    finally:
        store.close()
    expected = live.get("/api/v1/alerts")["alerts"][0]
    page = browser_page.page
    page.goto(f"{live.url}/alerts")
    page.wait_for_selector("#current tr[data-state=firing]", timeout=15_000)
    row = page.locator("#current tr[data-state=firing]")
    assert row.locator("td").nth(1).inner_text() == "ManyGoroutines"
    assert "instance=a:6060" in row.inner_text()
    assert row.locator("td").nth(5).inner_text() == expected["annotations"]["summary"]
    assert page.locator("#rules tr[data-rule=ManyGoroutines] td").nth(3).inner_text() == "value > 1"
    assert "1 firing" in page.locator("#rules tr[data-rule=ManyGoroutines]").inner_text()
    assert "inactive → firing" in page.locator("#history tr[data-rule=ManyGoroutines]").inner_text()
    assert page.locator("#receivers").inner_text().count("oncall") == 1
    assert page.locator(".app-header nav a[aria-current=page]").inner_text() == "Alerts"

    # The form: a bad expression shows the server's message naming the field, under the form (the page
    # loaded fine: its banner stays hidden); a good rule appears, then goes.
    page.click("#new-rule-button")
    page.fill("#new-rule input[name=name]", "HeapBig")
    page.select_option("#new-rule select[name=type]", "heap")
    page.fill("#new-rule input[name=expr]", "slope(10m) > 100")
    page.click("#new-rule button[type=submit]")
    page.wait_for_selector("#new-rule #rule-error:not([hidden])")
    assert page.locator("#rule-error").inner_text().startswith("expr: 'slope(10m) > 100' does not parse")
    assert page.locator("#error").is_hidden()
    assert page.input_value("#new-rule input[name=expr]") == "slope(10m) > 100"  # kept, to correct it
    page.fill("#new-rule input[name=expr]", "value > 2e9")
    page.click("#new-rule button[type=submit]")
    page.wait_for_selector("#rules tr[data-rule=HeapBig]")
    assert page.locator("#error").is_hidden() and page.locator("#new-rule").is_hidden()
    assert [r["name"] for r in live.get("/api/v1/rules")["rules"]] == ["ManyGoroutines", "HeapBig"]
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#rules tr[data-rule=HeapBig] button.delete-rule").click()
    page.wait_for_selector("#rules tr[data-rule=HeapBig]", state="detached")
    assert [r["name"] for r in live.get("/api/v1/rules")["rules"]] == ["ManyGoroutines"]
    # Chromium logs every 4xx response; the one refused rule is the only complaint.
    assert browser_page.errors == [
        "console: Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]


def test_rules_are_edited_and_receivers_added_on_the_page(
    alerting_server: tuple[LiveServer, str], browser_page: BrowserPage
) -> None:
    live, _ = alerting_server
    page = browser_page.page
    page.goto(f"{live.url}/alerts")
    page.wait_for_selector("#rules tr[data-rule=ManyGoroutines]")

    # A receiver from the page: a refused URL is said under its form; a good one is listed and offered to rules.
    page.click("#new-receiver-button")
    page.fill("#new-receiver input[name=name]", "pager")
    page.fill("#new-receiver input[name=webhook_url]", "file:///etc/passwd")
    page.click("#new-receiver button[type=submit]")
    page.wait_for_selector("#receiver-error:not([hidden])")
    refused = urllib.request.Request(
        f"{live.url}/api/v1/receivers",
        data=json.dumps({"name": "pager", "webhook_url": "file:///etc/passwd"}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(refused, timeout=30)
    assert page.inner_text("#receiver-error") == json.loads(answer.value.read())["error"]
    page.fill("#new-receiver input[name=webhook_url]", "http://127.0.0.1:9/pager")
    page.click("#new-receiver button[type=submit]")
    page.wait_for_selector("#receivers tr[data-receiver=pager]")
    assert {r["name"]: r["webhook_url"] for r in live.get("/api/v1/receivers")["receivers"]} == {
        "oncall": "http://127.0.0.1:9/hook",
        "pager": "http://127.0.0.1:9/pager",
    }
    assert "pager" in page.eval_on_selector_all("#new-rule select[name=receiver] option", "os => os.map(o => o.value)")

    # Edit the rule: the form is filled with it, the name fixed; a refusal stays under the form.
    page.locator("#rules tr[data-rule=ManyGoroutines] button.edit-rule").click()
    form = page.locator("#new-rule")
    form.wait_for()
    assert page.inner_text("#rule-form-title") == "Edit rule ManyGoroutines"
    assert form.locator("input[name=name]").input_value() == "ManyGoroutines"
    assert form.locator("input[name=name]").get_attribute("readonly") is not None
    assert form.locator("input[name=expr]").input_value() == "value > 1"
    assert form.locator("select[name=receiver]").input_value() == "oncall"
    assert form.locator("input[name=summary]").input_value() == "{{ $value }} goroutines on {{ $labels.instance }}"
    form.locator("input[name=expr]").fill("value >")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#rule-error:not([hidden])")
    assert page.inner_text("#rule-error").startswith("expr: 'value >' does not parse")
    assert live.get("/api/v1/rules/ManyGoroutines")["expr"] == "value > 1"
    # then a good edit: a new threshold, for, receiver and labels typed with spaces
    form.locator("input[name=expr]").fill("value > 5000")
    form.locator("input[name=for]").fill("2m")
    form.locator("select[name=receiver]").select_option("pager")
    form.locator("input[name=labels]").fill("severity=page team=checkout")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#new-rule", state="hidden")
    rule = live.get("/api/v1/rules/ManyGoroutines")
    assert (rule["expr"], rule["for"], rule["receiver"]) == ("value > 5000", "2m", "pager")
    assert rule["labels"] == {"severity": "page", "team": "checkout"}
    assert rule["annotations"] == {"summary": "{{ $value }} goroutines on {{ $labels.instance }}"}  # kept
    page.wait_for_function(
        "() => document.querySelector('#rules tr[data-rule=ManyGoroutines]').textContent.includes('value > 5000')"
    )
    assert [r["name"] for r in live.get("/api/v1/rules")["rules"]] == ["ManyGoroutines"]

    # A receiver still in use cannot go: the server's reason is said above the receivers.
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("#receivers tr[data-receiver=pager] button.delete-receiver").click()
    page.wait_for_selector("#receivers-message:not([hidden])")
    assert "used by rule(s) ManyGoroutines" in page.inner_text("#receivers-message")
    assert page.locator("#error").is_hidden()
    assert [e for e in browser_page.errors if "status of 4" not in e] == []
