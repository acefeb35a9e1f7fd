"""``/api/v1/rules``, ``/api/v1/receivers`` and ``/api/v1/alerts`` on both databases: CRUD and every 4xx."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.alerts.service import Alerting
from tests.support.helpers import push
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

RULE = {
    "name": "CheckoutGoroutineGrowth",
    "query": '{service="checkout"}',
    "type": "goroutine",
    "expr": "slope(10m) > 100/min",
    "for": "5m",
    "receiver": "oncall",
    "labels": {"severity": "page"},
    "annotations": {"summary": "goroutines growing on {{ $labels.instance }}"},
}


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    message: str = body["error"]
    return message


def test_receivers_and_rules_round_trip(client: TestClient) -> None:
    created = client.post("/api/v1/receivers", json={"name": "oncall", "webhook_url": "http://127.0.0.1:9/hook"})
    assert created.status_code == 201, created.text
    assert client.get("/api/v1/receivers").json() == {
        "receivers": [{"name": "oncall", "webhook_url": "http://127.0.0.1:9/hook", "source": "api"}]
    }
    response = client.post("/api/v1/rules", json=RULE)
    assert response.status_code == 201, response.text
    assert response.json() == {**RULE, "sample": None, "source": "api"}
    listed = client.get("/api/v1/rules").json()
    assert [r["name"] for r in listed["rules"]] == ["CheckoutGoroutineGrowth"]
    assert listed["rules"][0]["alerts"] == {"pending": 0, "firing": 0, "resolved": 0}
    assert client.get("/api/v1/rules/CheckoutGoroutineGrowth").json()["expr"] == "slope(10m) > 100/min"
    # A receiver in use cannot go; the rule can, and then the receiver.
    assert "used by rule(s) CheckoutGoroutineGrowth" in _error(client.delete("/api/v1/receivers/oncall"), 409)
    assert client.delete("/api/v1/rules/CheckoutGoroutineGrowth").status_code == 204
    assert client.get("/api/v1/rules").json()["rules"] == []
    assert client.delete("/api/v1/receivers/oncall").status_code == 204
    assert client.get("/api/v1/receivers").json() == {"receivers": []}


@pytest.mark.parametrize(
    ("change", "status", "says"),
    [
        ({"expr": "goroutines > 10000 for 5m"}, 400, "expr: 'goroutines > 10000 for 5m' does not parse"),
        ({"expr": "increase(-10m) > 5"}, 400, "expr: the window in 'increase(-10m) > 5' is negative"),
        ({"type": "goroutines"}, 400, "type: unknown profile type 'goroutines'"),
        ({"sample": "cpu"}, 400, "sample: unknown sample type 'cpu' for goroutine"),
        ({"for": "-1m"}, 400, "for: '-1m' is negative"),
        ({"receiver": "nobody"}, 400, "receiver: no receiver named 'nobody'"),
        ({"query": "{service=}"}, 400, "query:"),
        ({"name": "a b"}, 400, "name: 'a b' must be letters"),
        ({"annotations": {"summary": "{{ $labels }}"}}, 400, "annotations.summary:"),
        ({"severity": "page"}, 400, "severity: unknown field"),
    ],
)
def test_bad_rules_are_4xx_naming_the_field(
    client: TestClient, change: dict[str, object], status: int, says: str
) -> None:
    client.post("/api/v1/receivers", json={"name": "oncall", "webhook_url": "http://127.0.0.1:9/hook"})
    assert says in _error(client.post("/api/v1/rules", json={**RULE, **change}), status)
    assert client.get("/api/v1/rules").json()["rules"] == []


def test_other_refusals(client: TestClient) -> None:
    assert "valid dictionary" in _error(client.post("/api/v1/rules", json=["not", "an", "object"]), 422)
    bad_json = client.post("/api/v1/rules", content=b"{not json", headers={"Content-Type": "application/json"})
    assert "JSON decode error" in _error(bad_json, 422)
    _error(client.post("/api/v1/receivers", json={"name": "x", "webhook_url": "file:///etc/passwd"}), 400)
    _error(client.delete("/api/v1/rules/Nope"), 404)
    _error(client.delete("/api/v1/receivers/nope"), 404)
    _error(client.get("/api/v1/rules/Nope"), 404)
    rule = {**RULE, "receiver": None}
    assert client.post("/api/v1/rules", json={k: v for k, v in rule.items() if v is not None}).status_code == 201
    assert "already exists" in _error(client.post("/api/v1/rules", json={k: v for k, v in rule.items() if v}), 409)
    client.post("/api/v1/receivers", json={"name": "r", "webhook_url": "http://127.0.0.1:9/"})
    _error(client.post("/api/v1/receivers", json={"name": "r", "webhook_url": "http://127.0.0.1:9/"}), 409)
    assert "state" in _error(client.get("/api/v1/alerts", params={"state": "burning"}), 422)


def test_alerts_lists_current_states_and_history(client: TestClient) -> None:
    push(client, DATA / "goroutine.pb.gz", service="checkout", time="now-10s", label="instance=a:6060")
    rule = {"name": "Many", "query": '{service="checkout"}', "type": "goroutine", "expr": "value > 1"}
    assert client.post("/api/v1/rules", json=rule).status_code == 201
    alerting: Alerting = client.app.state.alerting  # type: ignore[attr-defined]
    alerting.evaluator.evaluate()
    body = client.get("/api/v1/alerts").json()
    (alert,) = body["alerts"]
    assert (alert["rule"], alert["state"], alert["labels"]["instance"]) == ("Many", "firing", "a:6060")
    assert alert["labels"]["alertname"] == "Many" and alert["value"] > 1
    assert [(h["from"], h["to"]) for h in body["history"]] == [("inactive", "firing")]
    assert client.get("/api/v1/alerts", params={"state": "pending"}).json()["alerts"] == []
    assert client.get("/api/v1/rules").json()["rules"][0]["alerts"]["firing"] == 1
