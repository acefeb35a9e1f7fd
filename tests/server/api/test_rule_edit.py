"""``PUT /api/v1/rules/{name}``: edit a rule in place (what the Alerts page's Edit does), on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.alerts.rules import parse_rule
from server.alerts.service import Alerting
from server.app import create_app
from server.settings import Settings
from server.store.repository import Store
from tests.support.helpers import push
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

RULE = {"name": "Many", "query": '{service="checkout"}', "type": "goroutine", "expr": "value > 1", "for": "0s"}


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    message: str = response.json()["error"]
    return message


def test_an_edit_replaces_the_rule_and_keeps_its_name(client: TestClient) -> None:
    assert client.post("/api/v1/receivers", json={"name": "oncall", "webhook_url": "http://127.0.0.1:9/"}).status_code
    assert client.post("/api/v1/rules", json={**RULE, "labels": {"team": "pay"}}).status_code == 201
    edited = {**RULE, "expr": "slope(10m) > 100/min", "for": "5m", "receiver": "oncall"}
    response = client.put("/api/v1/rules/Many", json=edited)
    assert response.status_code == 200, response.text
    expected: dict[str, object] = {**edited, "sample": None, "labels": {}, "annotations": {}, "source": "api"}
    assert response.json() == expected
    assert client.get("/api/v1/rules/Many").json() == expected
    assert [r["name"] for r in client.get("/api/v1/rules").json()["rules"]] == ["Many"]
    # the name may be left out of the body: the path names the rule
    without = {k: v for k, v in edited.items() if k != "name"}
    assert client.put("/api/v1/rules/Many", json={**without, "expr": "value > 5"}).json()["expr"] == "value > 5"


def test_refusals_name_the_problem_and_change_nothing(client: TestClient) -> None:
    assert client.post("/api/v1/rules", json=RULE).status_code == 201
    assert "does not parse" in _error(client.put("/api/v1/rules/Many", json={**RULE, "expr": "value >> 1"}), 400)
    assert "receiver: no receiver named 'x'" in _error(
        client.put("/api/v1/rules/Many", json={**RULE, "receiver": "x"}), 400
    )
    renamed = _error(client.put("/api/v1/rules/Many", json={**RULE, "name": "Other"}), 400)
    assert renamed == "name: 'Other' is not the rule in the path, 'Many'; a rule cannot be renamed"
    assert "no rule named 'Nope'" in _error(client.put("/api/v1/rules/Nope", json={**RULE, "name": "Nope"}), 404)
    assert client.get("/api/v1/rules/Many").json()["expr"] == "value > 1"


@pytest.fixture
def with_config_rule(settings: Settings, store: Store) -> Iterator[TestClient]:
    alerting = Alerting(store, settings, rules=[parse_rule({**RULE, "name": "FromFile"}, source="config")])
    with TestClient(create_app(settings, store, alerting=alerting)) as test_client:
        yield test_client


def test_config_file_rules_are_not_edited_here(with_config_rule: TestClient) -> None:
    message = _error(with_config_rule.put("/api/v1/rules/FromFile", json={**RULE, "name": "FromFile"}), 409)
    assert message == "rule 'FromFile' is defined in the config file; change it there"


def test_an_edited_rule_keeps_its_alerts_and_judges_them_anew(client: TestClient) -> None:
    push(client, DATA / "goroutine.pb.gz", service="checkout", time="now-10s", label="instance=a:6060")
    assert client.post("/api/v1/rules", json=RULE).status_code == 201
    alerting: Alerting = client.app.state.alerting  # type: ignore[attr-defined]
    alerting.evaluator.evaluate()
    assert [a["state"] for a in client.get("/api/v1/alerts").json()["alerts"]] == ["firing"]
    # still true under the new threshold: it keeps firing, no new transition
    assert client.put("/api/v1/rules/Many", json={**RULE, "expr": "value > 2"}).status_code == 200
    alerting.evaluator.evaluate()
    body = client.get("/api/v1/alerts").json()
    assert [a["state"] for a in body["alerts"]] == ["firing"]
    assert [(h["from"], h["to"]) for h in body["history"]] == [("inactive", "firing")]
    # no longer true: it resolves
    assert client.put("/api/v1/rules/Many", json={**RULE, "expr": "value > 1000000000"}).status_code == 200
    alerting.evaluator.evaluate()
    body = client.get("/api/v1/alerts").json()
    assert [a["state"] for a in body["alerts"]] == ["resolved"]
    assert [(h["from"], h["to"]) for h in body["history"]] == [("firing", "resolved"), ("inactive", "firing")]
