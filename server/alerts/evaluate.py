"""One evaluation round: every rule on every matching instance, states moved, notifications queued.

The state machine per (rule, instance):

    inactive ──condition──▶ pending ──held for `for`──▶ firing ──clears──▶ resolved
        ▲                      │                                        │
        └─────clears───────────┘          resolved ──condition──▶ pending (or firing when for is 0)

A rule with ``for: 0s`` goes straight from inactive (or resolved) to firing.
A state belongs to one rule, named and created once: a rule deleted and made
again under the same name starts inactive, whatever the old one had pending
(what the old one fired is resolved, as for any deleted rule).
Only two transitions notify: into firing, and firing into resolved. Both
write their outbox rows in the same transaction as the state change, keyed
by (receiver, rule, instance, start of the firing, status), so neither a
restart nor a second replica can send one firing twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection

from server.alerts.payload import (
    alert_json,
    alertmanager_body,
    external_url,
    fingerprint,
    generator_url,
    webhook_body,
)
from server.alerts.receivers import Receiver
from server.alerts.rules import Rule, expand_template
from server.alerts.values import RoundReader, Sample, rule_samples
from server.errors import StackyardError
from server.settings import Settings
from server.store.alerting import Notification, Round, StateRecord, Transition
from server.store.profiles import TooManyRows
from server.store.repository import Store

log = logging.getLogger(__name__)

ALERTMANAGER = "alertmanager"
#: Resolved states are shown this long after they resolve, then forgotten (their history stays).
FORGET_AFTER_NS = 15 * 60 * 10**9


@dataclass(slots=True)
class RoundResult:
    evaluated: bool
    transitions: list[Transition] = field(default_factory=list)
    notifications: int = 0
    errors: dict[str, str] = field(default_factory=dict)


class Evaluator:
    """Evaluates ``rules()`` against the store; ``receivers()`` says where firing alerts go."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        rules: Callable[[], list[Rule]],
        receivers: Callable[[], dict[str, Receiver]],
    ) -> None:
        self._store = store
        self._settings = settings
        self._rules = rules
        self._receivers = receivers
        #: The last evaluation problem of each rule (a query over its limit, a receiver gone), for the API.
        self.errors: dict[str, str] = {}
        self.last_round_ns: int | None = None

    def evaluate(self, now_ns: int | None = None) -> RoundResult:
        now = time.time_ns() if now_ns is None else now_ns
        rules = self._rules()
        samples: dict[str, list[Sample]] = {}
        errors: dict[str, str] = {}
        reader = RoundReader(self._store, now, self._settings.rule_max_points, rules)
        for rule in rules:
            try:
                samples[rule.name] = rule_samples(self._store, rule, now, self._settings.rule_max_points, reader)
            except TooManyRows as exc:
                errors[rule.name] = f"the window reads more than {exc.limit} profiles (STACKYARD_RULE_MAX_POINTS)"
            except StackyardError as exc:  # a limit of the leak finder, say: the rule's problem, not a crash
                errors[rule.name] = exc.message
            except Exception as exc:  # one broken rule must not stop the others
                log.exception("rule evaluation failed", extra={"rule": rule.name})
                errors[rule.name] = f"evaluation failed: {exc}"
        receivers = self._receivers()
        changes = Round()
        with self._store.alerts.round() as held:
            if held is None:
                return RoundResult(evaluated=False)
            conn, states = held
            step = _Step(self._store, self._settings, conn, states, now, changes, receivers, errors)
            for rule in rules:
                if rule.name not in errors:  # a failed read keeps the states as they are, rather than resolve them
                    step.advance(rule, samples[rule.name])
            step.finish()
            known = {rule.name for rule in rules}
            for (rule_name, fp), record in states.items():
                if rule_name not in known:  # the rule was deleted: resolve what fired, then forget
                    if record.state == "firing":
                        step.resolve(record)
                        step.keep(record, "firing")  # the history shows it ended
                    changes.deletes.append((rule_name, fp))
            self._store.alerts.apply(conn, changes)
        self.errors = errors
        self.last_round_ns = now
        for transition in changes.transitions:
            log.info(
                "alert state",
                extra={
                    "rule": transition.rule,
                    "from": transition.from_state,
                    "to": transition.to_state,
                    "value": transition.value,
                    "instance": transition.labels.get("instance"),
                },
            )
        return RoundResult(True, changes.transitions, len(changes.notifications), errors)


class _Step:
    """The state changes of one round, inside its transaction."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        conn: Connection,
        states: dict[tuple[str, str], StateRecord],
        now: int,
        changes: Round,
        receivers: dict[str, Receiver],
        errors: dict[str, str],
    ) -> None:
        self.store = store
        self.settings = settings
        self.conn = conn
        self.states = states
        self.now = now
        self.changes = changes
        self.receivers = receivers
        self.errors = errors
        self.external_url = external_url(settings)
        #: States of former rules of the same name, taken out this round.
        self.retired: set[tuple[str, str]] = set()

    def advance(self, rule: Rule, samples: list[Sample]) -> None:
        now = self.now
        seen: set[str] = set()
        for sample in samples:
            labels = {**sample.labels, **rule.labels, "alertname": rule.name}
            fp = fingerprint(labels)
            seen.add(fp)
            record = self.own_state(rule, fp)
            holds = rule.expr.holds(sample.value)
            if record is None:
                if not holds:
                    continue  # nothing to remember about an instance that never alerted
                record = StateRecord(
                    rule.name, fp, labels, {}, "inactive", None, None, None, None, now, rule.created_ns
                )
            before = record.state
            record.value, record.updated_ns, record.labels = sample.value, now, labels
            if holds:
                if before != "firing":  # the firing's text stays what was sent
                    record.annotations = {
                        k: expand_template(v, labels, sample.value) for k, v in rule.annotations.items()
                    }
                if before in ("inactive", "resolved"):
                    record.active_ns, record.fired_ns, record.resolved_ns = now, None, None
                    record.state = "pending"
                if record.state == "pending" and now - (record.active_ns or now) >= rule.for_s * 1e9:
                    record.state, record.fired_ns = "firing", now
                    self.fire(rule, record)
            elif before == "pending":
                record.state = "inactive"
            elif before == "firing":
                self.resolve(record)
            elif self.forgettable(record):
                continue
            self.keep(record, before)
        for (rule_name, fp), record in list(self.states.items()):
            if rule_name != rule.name or fp in seen:
                continue
            if self.own_state(rule, fp) is None:
                continue  # a former rule's state, retired just now
            # No value this round: the instance stopped reporting, or its window is short of profiles.
            before = record.state
            if before == "pending":
                record.state, record.updated_ns = "inactive", now
                self.keep(record, before)
            elif before == "firing":
                record.updated_ns = now
                self.resolve(record)
                self.keep(record, before)
            else:
                self.forgettable(record)

    def own_state(self, rule: Rule, fp: str) -> StateRecord | None:
        """The rule's state for this instance; a state of a former rule of the same name is retired first.

        A state written before states named their rule's creation is taken to be this rule's.
        """
        record = self.states.get((rule.name, fp))
        if record is None:
            return None
        if record.rule_created_ns is None:
            record.rule_created_ns = rule.created_ns
        if record.rule_created_ns == rule.created_ns:
            return record
        if record.state == "firing":  # the former rule's firing ends: who was told hears it resolved
            before = record.state
            self.resolve(record)
            self.changes.transitions.append(
                Transition(record.rule, fp, dict(record.labels), before, record.state, record.value, self.now)
            )
        # Gone from the database unless this round keeps a new state under the key (see finish()).
        self.retired.add((rule.name, fp))
        del self.states[(rule.name, fp)]
        return None

    def finish(self) -> None:
        """Delete retired states no new state replaced (deletes run after upserts, so a replaced one must not)."""
        kept = {(record.rule, record.fingerprint) for record in self.changes.upserts}
        self.changes.deletes.extend(key for key in sorted(self.retired) if key not in kept)

    def forgettable(self, record: StateRecord) -> bool:
        """Drop a quiet state: inactive at once (history keeps the story), resolved after FORGET_AFTER_NS."""
        if record.state == "inactive" or self.now - (record.resolved_ns or 0) > FORGET_AFTER_NS:
            self.changes.deletes.append((record.rule, record.fingerprint))
            return True
        return False

    def keep(self, record: StateRecord, before: str) -> None:
        self.changes.upserts.append(record)
        if record.state != before:
            self.changes.transitions.append(
                Transition(
                    record.rule, record.fingerprint, dict(record.labels), before, record.state, record.value, self.now
                )
            )

    def fire(self, rule: Rule, record: StateRecord) -> None:
        starts = record.active_ns if record.active_ns is not None else self.now
        alert = alert_json("firing", record.labels, record.annotations, starts, None, self._url(rule.name))
        targets: list[tuple[str, str, object]] = []
        if rule.receiver is not None:
            receiver = self.receivers.get(rule.receiver)
            if receiver is None:
                self.errors[rule.name] = (
                    f"receiver {rule.receiver!r} does not exist; the alert fires without a notification"
                )
            else:
                targets.append(
                    (receiver.name, receiver.webhook_url, webhook_body(receiver.name, alert, self.external_url))
                )
        if self.settings.alertmanager_url:
            url = self.settings.alertmanager_url.rstrip("/") + "/api/v2/alerts"
            valid_until = self.now + int(4 * self.settings.alertmanager_resend_interval * 1e9)
            targets.append((ALERTMANAGER, url, alertmanager_body(alert, valid_until)))
        for name, url, body in targets:
            self.changes.notifications.append(
                Notification(name, rule.name, record.fingerprint, starts, "firing", url, body)
            )

    def resolve(self, record: StateRecord) -> None:
        """Firing to resolved; everyone told of the firing hears it ended."""
        record.state, record.resolved_ns = "resolved", self.now
        starts = record.active_ns if record.active_ns is not None else self.now
        alert = alert_json("resolved", record.labels, record.annotations, starts, self.now, self._url(record.rule))
        told = self.store.alerts.firing_notifications(self.conn, record.rule, record.fingerprint, starts)
        told += [
            n
            for n in self.changes.notifications
            if (n.rule, n.fingerprint, n.starts_ns, n.status) == (record.rule, record.fingerprint, starts, "firing")
        ]
        for firing in told:
            body: object
            if firing.receiver == ALERTMANAGER:
                body = alertmanager_body(alert)
            else:
                body = webhook_body(firing.receiver, alert, self.external_url)
            self.changes.notifications.append(
                Notification(firing.receiver, record.rule, record.fingerprint, starts, "resolved", firing.url, body)
            )

    def _url(self, rule: str) -> str:
        return generator_url(self.external_url, rule)
