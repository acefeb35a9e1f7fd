"""The server's own sections of the config file: ``auth`` (API tokens) and ``rules`` and ``receivers`` (alerting).

Rules and receivers are checked by the parsers the API uses
(:mod:`server.alerts`), whose errors name the field they reject, so the file
and the API report the same mistakes; here they get the file's key paths and
lines, and names must be unique.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from server.alerts.receivers import Receiver, parse_receiver
from server.alerts.rules import Rule, parse_rule
from server.auth.tokens import TokenEntry
from server.config.problems import KeyPath, Source
from server.config.validation import StrictModel
from server.errors import InvalidParameter
from server.network.policy import NetworkPolicy


class _TokenModel(StrictModel):
    name: str = Field(min_length=1, max_length=128)
    scopes: list[Literal["read", "ingest", "admin"]] = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")


class AuthModel(StrictModel):
    tokens: list[_TokenModel] = Field(default_factory=list)


def _alert_problem(src: Source, at: KeyPath, exc: InvalidParameter) -> None:
    """``labels.severity`` from the parser becomes the key path ``rules[0].labels.severity``."""
    parts = tuple(p for p in exc.parameter.split(".") if p) if exc.parameter not in ("rule", "receiver") else ()
    src.add((*at, *parts), exc.message.removeprefix(f"{exc.parameter}: "))


def tokens_of(auth: AuthModel | None) -> list[TokenEntry]:
    """The ``auth.tokens`` entries as the server's token model (digests only, as in ``STACKYARD_AUTH_TOKENS``)."""
    return [TokenEntry.model_validate(t.model_dump()) for t in (auth.tokens if auth else [])]


def build_alert_sections(
    rule_items: list[dict[str, Any]],
    receiver_items: list[dict[str, Any]],
    src: Source,
    policy: NetworkPolicy | None = None,
) -> tuple[list[Rule], list[Receiver]]:
    """Receivers first (a rule names one), each checked by the API's parser; the problems go to ``src``."""
    receivers: list[Receiver] = []
    seen: dict[str, int | None] = {}
    for i, data in enumerate(receiver_items):
        at: KeyPath = ("receivers", i)
        try:
            receiver = parse_receiver(data, source="config", policy=policy)
        except InvalidParameter as exc:
            _alert_problem(src, at, exc)
            continue
        if receiver.name in seen:
            src.add((*at, "name"), f"duplicate receiver {receiver.name!r} (first at line {seen[receiver.name]})")
            continue
        seen[receiver.name] = src.line((*at, "name"))
        receivers.append(receiver)
    rules: list[Rule] = []
    names: dict[str, int | None] = {}
    for i, data in enumerate(rule_items):
        at = ("rules", i)
        try:
            rule = parse_rule(data, source="config")
        except InvalidParameter as exc:
            _alert_problem(src, at, exc)
            continue
        if rule.name in names:
            src.add((*at, "name"), f"duplicate rule {rule.name!r} (first at line {names[rule.name]})")
            continue
        if rule.receiver is not None and rule.receiver not in seen:
            known = ", ".join(seen) or "none are defined"
            src.add((*at, "receiver"), f"no receiver named {rule.receiver!r} under receivers: ({known})")
            continue
        names[rule.name] = src.line((*at, "name"))
        rules.append(rule)
    return rules, receivers
