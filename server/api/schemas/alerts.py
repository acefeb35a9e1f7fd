"""Alerting: rules, receivers, current alerts and their history, as the API shows them (docs/api.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from server.alerts.receivers import Receiver
from server.alerts.rules import Rule
from server.api.schemas import Number
from server.store.alerting import StateRecord, Transition
from server.syntax.times import format_duration, format_time


def _time(ns: int | None) -> str | None:
    return format_time(ns) if ns is not None else None


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
    source: str = Field(description="api (stored, editable) or config (from the config file)")

    @classmethod
    def fields_of(cls, rule: Rule) -> dict[str, Any]:
        return {
            "name": rule.name,
            "query": rule.query,
            "type": rule.type,
            "sample": rule.sample,
            "expr": rule.expr.text,
            "for_": format_duration(rule.for_s),
            "receiver": rule.receiver,
            "labels": dict(rule.labels),
            "annotations": dict(rule.annotations),
            "source": rule.source,
        }

    @classmethod
    def of(cls, rule: Rule) -> RuleOut:
        return cls.model_validate(cls.fields_of(rule))


class RuleStatusOut(RuleOut):
    """A rule with its alerts per state and the error of its last evaluation."""

    alerts: dict[str, int] = Field(description="pending, firing and resolved alerts")
    error: str | None = Field(description="why the last evaluation failed; null when it did not")

    @classmethod
    def with_status(cls, rule: Rule, alerts: dict[str, int], error: str | None) -> RuleStatusOut:
        return cls.model_validate({**cls.fields_of(rule), "alerts": alerts, "error": error})


class RulesOut(BaseModel):
    rules: list[RuleStatusOut]
    evaluation_interval: float = Field(description="seconds")
    last_evaluation: str | None


class ReceiverOut(BaseModel):
    name: str
    webhook_url: str = Field(description="a password in it is redacted for readers who may not use it")
    source: str

    @classmethod
    def of(cls, receiver: Receiver, webhook_url: str | None = None) -> ReceiverOut:
        """``webhook_url`` replaces the receiver's own (redacted, for a reader)."""
        url = receiver.webhook_url if webhook_url is None else webhook_url
        return cls(name=receiver.name, webhook_url=url, source=receiver.source)


class ReceiversOut(BaseModel):
    receivers: list[ReceiverOut]


class AlertOut(BaseModel):
    rule: str
    state: str
    labels: dict[str, str]
    annotations: dict[str, str]
    value: Number | None
    active_since: str | None
    fired_at: str | None
    resolved_at: str | None
    updated_at: str | None
    fingerprint: str
    generator_url: str

    @classmethod
    def of(cls, record: StateRecord, url: str) -> AlertOut:
        return cls(
            rule=record.rule,
            state=record.state,
            labels=record.labels,
            annotations=record.annotations,
            value=record.value,
            active_since=_time(record.active_ns),
            fired_at=_time(record.fired_ns),
            resolved_at=_time(record.resolved_ns),
            updated_at=_time(record.updated_ns),
            fingerprint=record.fingerprint,
            generator_url=url,
        )


class TransitionOut(BaseModel):
    rule: str
    from_: str = Field(serialization_alias="from")
    to: str
    labels: dict[str, str]
    value: Number | None
    time: str
    fingerprint: str

    @classmethod
    def of(cls, transition: Transition) -> TransitionOut:
        return cls(
            rule=transition.rule,
            from_=transition.from_state,
            to=transition.to_state,
            labels=transition.labels,
            value=transition.value,
            time=format_time(transition.time_ns),
            fingerprint=transition.fingerprint,
        )


class AlertsOut(BaseModel):
    alerts: list[AlertOut] = Field(description="firing, then pending, then resolved")
    history: list[TransitionOut] = Field(description="newest first")
