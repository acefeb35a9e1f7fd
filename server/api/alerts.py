"""Alerting: rules (list, create, edit, delete) and receivers (list, create, delete), current alerts, history."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from server.alerts.payload import external_url, generator_url
from server.alerts.receivers import parse_receiver
from server.alerts.rules import parse_rule
from server.api.deps import AlertingDep, RevealDep
from server.api.schemas.alerts import (
    AlertOut,
    AlertsOut,
    ReceiverOut,
    ReceiversOut,
    RuleOut,
    RulesOut,
    RuleStatusOut,
    TransitionOut,
)
from server.errors import InvalidParameter, NotFound
from server.network.redact import redact_credentials
from server.syntax.times import format_time

router = APIRouter(prefix="/api/v1", tags=["alerts"])
STATES = ("inactive", "pending", "firing", "resolved")


@router.get("/rules")
def list_rules(alerting: AlertingDep) -> RulesOut:
    counts: dict[str, Counter[str]] = {}
    for record in alerting.store.alerts.states():
        counts.setdefault(record.rule, Counter())[record.state] += 1
    rules = []
    for rule in alerting.rules():
        per_state = counts.get(rule.name, Counter())
        alerts = {state: per_state.get(state, 0) for state in STATES if state != "inactive"}
        rules.append(RuleStatusOut.with_status(rule, alerts, alerting.evaluator.errors.get(rule.name)))
    last = alerting.evaluator.last_round_ns
    return RulesOut(
        rules=rules,
        evaluation_interval=alerting.settings.rule_eval_interval,
        last_evaluation=format_time(last) if last is not None else None,
    )


@router.get("/rules/{name}")
def get_rule(name: str, alerting: AlertingDep) -> RuleOut:
    for rule in alerting.rules():
        if rule.name == name:
            return RuleOut.of(rule)
    raise NotFound(f"no rule named {name!r}")


@router.post("/rules", status_code=201)
def create_rule(body: Annotated[dict[str, Any], Body()], alerting: AlertingDep) -> RuleOut:
    return RuleOut.of(alerting.add_rule(parse_rule(body)))


@router.put("/rules/{name}")
def replace_rule(name: str, body: Annotated[dict[str, Any], Body()], alerting: AlertingDep) -> RuleOut:
    """Edit a rule made through the API: the whole rule, under the same name. Its alerts stay (see the docs)."""
    given = body.get("name", name)
    if given != name:
        raise InvalidParameter("name", f"{given!r} is not the rule in the path, {name!r}; a rule cannot be renamed")
    return RuleOut.of(alerting.replace_rule(parse_rule({**body, "name": name})))


@router.delete("/rules/{name}", status_code=204)
def delete_rule(name: str, alerting: AlertingDep) -> Response:
    alerting.delete_rule(name)
    return Response(status_code=204)


@router.get("/receivers")
def list_receivers(alerting: AlertingDep, reveal: RevealDep) -> ReceiversOut:
    receivers = sorted(alerting.receivers_by_name().values(), key=lambda r: r.name)
    # A password in a webhook URL is redacted as in a target's.
    return ReceiversOut(
        receivers=[ReceiverOut.of(r, None if reveal else redact_credentials(r.webhook_url)) for r in receivers]
    )


@router.post("/receivers", status_code=201)
def create_receiver(body: Annotated[dict[str, Any], Body()], alerting: AlertingDep) -> ReceiverOut:
    return ReceiverOut.of(alerting.add_receiver(parse_receiver(body, policy=alerting.settings.network_policy())))


@router.delete("/receivers/{name}", status_code=204)
def delete_receiver(name: str, alerting: AlertingDep) -> Response:
    alerting.delete_receiver(name)
    return Response(status_code=204)


@router.get("/alerts")
def list_alerts(
    alerting: AlertingDep,
    rule: Annotated[str | None, Query()] = None,
    state: Annotated[str | None, Query(pattern="^(inactive|pending|firing|resolved)$")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> AlertsOut:
    """Current alerts (pending, firing and recently resolved; ``state=`` narrows) and the newest transitions."""
    base = external_url(alerting.settings)
    current = [
        AlertOut.of(record, generator_url(base, record.rule))
        for record in alerting.store.alerts.states()
        if (rule is None or record.rule == rule) and (record.state == state if state else record.state != "inactive")
    ]
    order = {"firing": 0, "pending": 1, "resolved": 2, "inactive": 3}
    current.sort(key=lambda a: (order[a.state], a.rule, sorted(a.labels.items())))
    history = [TransitionOut.of(t) for t in alerting.store.alerts.history(limit, rule)]
    return AlertsOut(alerts=current, history=history)
