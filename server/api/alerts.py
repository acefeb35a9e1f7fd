"""Alerting: rules (list, create, edit, delete) and receivers (list, create, delete), current alerts, history."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from server.alerts.payload import external_url, generator_url
from server.alerts.receivers import parse_receiver
from server.alerts.rules import parse_rule
from server.alerts.service import Alerting
from server.api.deps import reveals_credentials
from server.errors import InvalidParameter, NotFound
from server.network.redact import redact_credentials
from server.store.alerting import StateRecord, Transition
from server.syntax.times import format_time

router = APIRouter(prefix="/api/v1", tags=["alerts"])
STATES = ("inactive", "pending", "firing", "resolved")


def _alerting(request: Request) -> Alerting:
    alerting: Alerting = request.app.state.alerting
    return alerting


def _time(ns: int | None) -> str | None:
    return format_time(ns) if ns is not None else None


def _state_json(record: StateRecord, url: str) -> dict[str, Any]:
    return {
        "rule": record.rule,
        "state": record.state,
        "labels": record.labels,
        "annotations": record.annotations,
        "value": record.value,
        "active_since": _time(record.active_ns),
        "fired_at": _time(record.fired_ns),
        "resolved_at": _time(record.resolved_ns),
        "updated_at": _time(record.updated_ns),
        "fingerprint": record.fingerprint,
        "generator_url": url,
    }


def _transition_json(transition: Transition) -> dict[str, Any]:
    return {
        "rule": transition.rule,
        "from": transition.from_state,
        "to": transition.to_state,
        "labels": transition.labels,
        "value": transition.value,
        "time": format_time(transition.time_ns),
        "fingerprint": transition.fingerprint,
    }


@router.get("/rules")
def list_rules(request: Request) -> dict[str, Any]:
    alerting = _alerting(request)
    counts: dict[str, Counter[str]] = {}
    for record in alerting.store.alerts.states():
        counts.setdefault(record.rule, Counter())[record.state] += 1
    rules = []
    for rule in alerting.rules():
        per_state = counts.get(rule.name, Counter())
        rules.append(
            {
                **rule.to_json(),
                "alerts": {state: per_state.get(state, 0) for state in STATES if state != "inactive"},
                "error": alerting.evaluator.errors.get(rule.name),
            }
        )
    last = alerting.evaluator.last_round_ns
    return {
        "rules": rules,
        "evaluation_interval": alerting.settings.rule_eval_interval,
        "last_evaluation": _time(last),
    }


@router.get("/rules/{name}")
def get_rule(name: str, request: Request) -> dict[str, Any]:
    for rule in _alerting(request).rules():
        if rule.name == name:
            return rule.to_json()
    raise NotFound(f"no rule named {name!r}")


@router.post("/rules", status_code=201)
def create_rule(body: Annotated[dict[str, Any], Body()], request: Request) -> dict[str, Any]:
    alerting = _alerting(request)
    return alerting.add_rule(parse_rule(body)).to_json()


class RuleOut(BaseModel):
    """A rule as stored (docs/api.md#rules)."""

    model_config = ConfigDict(populate_by_name=True)
    name: str
    query: str
    type: str
    sample: str | None
    expr: str
    for_: str = Field(alias="for", serialization_alias="for")
    receiver: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    source: str


@router.put("/rules/{name}", response_model_by_alias=True)
def replace_rule(name: str, body: Annotated[dict[str, Any], Body()], request: Request) -> RuleOut:
    """Edit a rule made through the API: the whole rule, under the same name. Its alerts stay (see the docs)."""
    given = body.get("name", name)
    if given != name:
        raise InvalidParameter("name", f"{given!r} is not the rule in the path, {name!r}; a rule cannot be renamed")
    rule = _alerting(request).replace_rule(parse_rule({**body, "name": name}))
    return RuleOut.model_validate(rule.to_json())


@router.delete("/rules/{name}", status_code=204)
def delete_rule(name: str, request: Request) -> Response:
    _alerting(request).delete_rule(name)
    return Response(status_code=204)


@router.get("/receivers")
def list_receivers(request: Request) -> dict[str, Any]:
    receivers = sorted(_alerting(request).receivers_by_name().values(), key=lambda r: r.name)
    shown = [r.to_json() for r in receivers]
    if not reveals_credentials(request):  # a password in a webhook URL, as in a target's
        for item in shown:
            item["webhook_url"] = redact_credentials(item["webhook_url"])
    return {"receivers": shown}


@router.post("/receivers", status_code=201)
def create_receiver(body: Annotated[dict[str, Any], Body()], request: Request) -> dict[str, Any]:
    alerting = _alerting(request)
    return alerting.add_receiver(parse_receiver(body, policy=alerting.settings.network_policy())).to_json()


@router.delete("/receivers/{name}", status_code=204)
def delete_receiver(name: str, request: Request) -> Response:
    _alerting(request).delete_receiver(name)
    return Response(status_code=204)


@router.get("/alerts")
def list_alerts(
    request: Request,
    rule: Annotated[str | None, Query()] = None,
    state: Annotated[str | None, Query(pattern="^(inactive|pending|firing|resolved)$")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> dict[str, Any]:
    """Current alerts (pending, firing and recently resolved; ``state=`` narrows) and the newest transitions."""
    alerting = _alerting(request)
    base = external_url(alerting.settings)
    current = [
        _state_json(record, generator_url(base, record.rule))
        for record in alerting.store.alerts.states()
        if (rule is None or record.rule == rule) and (record.state == state if state else record.state != "inactive")
    ]
    order = {"firing": 0, "pending": 1, "resolved": 2, "inactive": 3}
    current.sort(key=lambda a: (order[a["state"]], a["rule"], sorted(a["labels"].items())))
    history = [_transition_json(t) for t in alerting.store.alerts.history(limit, rule)]
    return {"alerts": current, "history": history}
