"""Alerting tables: API rules and receivers, alert states and their history, the notification outbox.

The evaluator writes a round's state changes, history rows and outbox rows
in one transaction (:meth:`AlertTables.apply`), so a crash leaves either all
of a round or none of it: a firing is never recorded without its
notification, nor notified twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Text, delete, func, insert, select, text, type_coerce, update
from sqlalchemy.exc import IntegrityError

from server.errors import NotFound
from server.store.database import chunks, insert_ignoring_conflicts
from server.store.models import (
    AlertHistoryRow,
    AlertOutboxRow,
    AlertReceiverRow,
    AlertRuleRow,
    AlertStateRow,
    ProfileRow,
)
from server.store.profiles import TooManyRows
from server.store.registry import Conflict

#: PostgreSQL advisory lock held by the replica evaluating rules, so replicas never evaluate the same round twice.
EVAL_LOCK = 7_299_999_998


@dataclass(slots=True)
class StateRecord:
    rule: str
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    state: str
    value: float | None
    active_ns: int | None
    fired_ns: int | None
    resolved_ns: int | None
    updated_ns: int
    rule_created_ns: int | None = None  # the rule's identity beside its name (None: written before 0011)

    def to_row(self) -> dict[str, Any]:
        return {
            "rule_name": self.rule,
            "fingerprint": self.fingerprint,
            "labels": self.labels,
            "annotations": self.annotations,
            "state": self.state,
            "value": self.value,
            "active_ns": self.active_ns,
            "fired_ns": self.fired_ns,
            "resolved_ns": self.resolved_ns,
            "updated_ns": self.updated_ns,
            "rule_created_ns": self.rule_created_ns,
        }


@dataclass(frozen=True, slots=True)
class Transition:
    rule: str
    fingerprint: str
    labels: dict[str, str]
    from_state: str
    to_state: str
    value: float | None
    time_ns: int


@dataclass(frozen=True, slots=True)
class Notification:
    """An outbox row: ``body`` is the exact JSON to POST to ``url``."""

    receiver: str
    rule: str
    fingerprint: str
    starts_ns: int
    status: str
    url: str
    body: Any
    id: int = 0
    attempts: int = 0
    outcome: str = "pending"
    sent_ns: int | None = None
    last_error: str | None = None


@dataclass(slots=True)
class Round:
    """Everything one evaluation round changes."""

    upserts: list[StateRecord] = field(default_factory=list)
    deletes: list[tuple[str, str]] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)


def _state(row: Any) -> StateRecord:
    return StateRecord(
        rule=row.rule_name,
        fingerprint=row.fingerprint,
        labels=dict(row.labels),
        annotations=dict(row.annotations),
        state=row.state,
        value=None if row.value is None else float(row.value),
        active_ns=row.active_ns,
        fired_ns=row.fired_ns,
        resolved_ns=row.resolved_ns,
        updated_ns=int(row.updated_ns),
        rule_created_ns=row.rule_created_ns,
    )


def _notification(row: Any) -> Notification:
    return Notification(
        receiver=row.receiver,
        rule=row.rule_name,
        fingerprint=row.fingerprint,
        starts_ns=int(row.starts_ns),
        status=row.status,
        url=row.url,
        body=row.payload["body"],
        id=int(row.id),
        attempts=int(row.attempts),
        outcome=row.outcome,
        sent_ns=row.sent_ns,
        last_error=row.last_error,
    )


class AlertTables:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # ------------------------------------------------------------------ rules and receivers (API-made)

    def rule_specs(self) -> list[tuple[dict[str, Any], int]]:
        """Every API rule's JSON and its creation time (which tells two rules of one name apart)."""
        with self._engine.connect() as conn:
            query = select(AlertRuleRow.spec, AlertRuleRow.created_ns).order_by(AlertRuleRow.id)
            return [(dict(spec), int(created)) for spec, created in conn.execute(query)]

    def add_rule(self, name: str, spec: dict[str, Any]) -> None:
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(AlertRuleRow), [{"name": name, "spec": spec, "created_ns": time.time_ns()}])
        except IntegrityError:
            raise Conflict(f"a rule named {name!r} already exists") from None

    def replace_rule(self, name: str, spec: dict[str, Any]) -> None:
        """Change a stored rule in place: its row, and so its identity and its alerts, stay."""
        with self._engine.begin() as conn:
            changed = conn.execute(update(AlertRuleRow).where(AlertRuleRow.name == name).values(spec=spec))
            if changed.rowcount == 0:
                raise NotFound(f"no rule named {name!r}")

    def delete_rule(self, name: str) -> None:
        """Delete the rule and its quiet states; what it fired stays until the evaluator resolves it (and says so)."""
        with self._engine.begin() as conn:
            if conn.execute(delete(AlertRuleRow).where(AlertRuleRow.name == name)).rowcount == 0:
                raise NotFound(f"no rule named {name!r}")
            conn.execute(delete(AlertStateRow).where(AlertStateRow.rule_name == name, AlertStateRow.state != "firing"))

    def receivers(self) -> list[tuple[str, str]]:
        with self._engine.connect() as conn:
            query = select(AlertReceiverRow.name, AlertReceiverRow.webhook_url).order_by(AlertReceiverRow.id)
            return [(name, url) for name, url in conn.execute(query)]

    def add_receiver(self, name: str, webhook_url: str) -> None:
        try:
            with self._engine.begin() as conn:
                row = {"name": name, "webhook_url": webhook_url, "created_ns": time.time_ns()}
                conn.execute(insert(AlertReceiverRow), [row])
        except IntegrityError:
            raise Conflict(f"a receiver named {name!r} already exists") from None

    def delete_receiver(self, name: str) -> None:
        with self._engine.begin() as conn:
            if conn.execute(delete(AlertReceiverRow).where(AlertReceiverRow.name == name)).rowcount == 0:
                raise NotFound(f"no receiver named {name!r}")

    # ------------------------------------------------------------------ states, history

    @contextmanager
    def round(self) -> Iterator[tuple[Connection, dict[tuple[str, str], StateRecord]] | None]:
        """One evaluation round's transaction with the current states, or None if another process holds it.

        PostgreSQL: a transaction-level advisory try-lock, so of several
        replicas one evaluates and the others skip the round. SQLite: a no-op
        write first, so the transaction holds the write lock before reading.
        """
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                if not conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": EVAL_LOCK}).scalar():
                    yield None
                    return
            else:
                conn.execute(update(AlertStateRow).where(AlertStateRow.id < 0).values(state=AlertStateRow.state))
            states = {(s.rule, s.fingerprint): s for s in map(_state, conn.execute(select(AlertStateRow)))}
            yield conn, states

    def apply(self, conn: Connection, changes: Round) -> None:
        for record in changes.upserts:
            done = conn.execute(
                update(AlertStateRow)
                .where(AlertStateRow.rule_name == record.rule, AlertStateRow.fingerprint == record.fingerprint)
                .values(**record.to_row())
            )
            if done.rowcount == 0:
                conn.execute(insert(AlertStateRow), [record.to_row()])
        for rule, fingerprint in changes.deletes:
            conn.execute(
                delete(AlertStateRow).where(AlertStateRow.rule_name == rule, AlertStateRow.fingerprint == fingerprint)
            )
        if changes.transitions:
            conn.execute(
                insert(AlertHistoryRow),
                [
                    {
                        "rule_name": t.rule,
                        "fingerprint": t.fingerprint,
                        "labels": t.labels,
                        "from_state": t.from_state,
                        "to_state": t.to_state,
                        "value": t.value,
                        "time_ns": t.time_ns,
                    }
                    for t in changes.transitions
                ],
            )
        now = time.time_ns()
        rows = [
            {
                "receiver": n.receiver,
                "rule_name": n.rule,
                "fingerprint": n.fingerprint,
                "starts_ns": n.starts_ns,
                "status": n.status,
                "url": n.url,
                "payload": {"body": n.body},
                "created_ns": now,
                "outcome": "pending",
                "attempts": 0,
                "next_ns": 0,
                "claimed_until_ns": 0,
            }
            for n in changes.notifications
        ]
        # A notification already in the outbox (same receiver, alert, firing and status) is not added again.
        insert_ignoring_conflicts(conn, AlertOutboxRow.__table__, rows)  # type: ignore[arg-type]

    def firing_notifications(self, conn: Connection, rule: str, fingerprint: str, starts_ns: int) -> list[Notification]:
        """Who was told of this firing: they, and only they, hear that it resolved."""
        query = select(AlertOutboxRow).where(
            AlertOutboxRow.rule_name == rule,
            AlertOutboxRow.fingerprint == fingerprint,
            AlertOutboxRow.starts_ns == starts_ns,
            AlertOutboxRow.status == "firing",
        )
        return [_notification(row) for row in conn.execute(query)]

    def states(self) -> list[StateRecord]:
        with self._engine.connect() as conn:
            query = select(AlertStateRow).order_by(AlertStateRow.rule_name, AlertStateRow.fingerprint)
            return [_state(row) for row in conn.execute(query)]

    def history(self, limit: int, rule: str | None = None) -> list[Transition]:
        query = select(AlertHistoryRow).order_by(AlertHistoryRow.time_ns.desc(), AlertHistoryRow.id.desc())
        if rule is not None:
            query = query.where(AlertHistoryRow.rule_name == rule)
        with self._engine.connect() as conn:
            return [
                Transition(r.rule_name, r.fingerprint, dict(r.labels), r.from_state, r.to_state, r.value, r.time_ns)
                for r in conn.execute(query.limit(limit))
            ]

    # ------------------------------------------------------------------ outbox

    def claim_due(self, now_ns: int, lease_ns: int, limit: int) -> list[Notification]:
        """Pending notifications whose time has come, leased to this process (a lease expires if it dies)."""
        query = (
            select(AlertOutboxRow.id)
            .where(
                AlertOutboxRow.outcome == "pending",
                AlertOutboxRow.next_ns <= now_ns,
                AlertOutboxRow.claimed_until_ns < now_ns,
            )
            .order_by(AlertOutboxRow.id)
            .limit(limit)
        )
        claimed: list[int] = []
        with self._engine.begin() as conn:
            for (row_id,) in conn.execute(query).all():
                taken = conn.execute(
                    update(AlertOutboxRow)
                    .where(AlertOutboxRow.id == row_id, AlertOutboxRow.claimed_until_ns < now_ns)
                    .values(claimed_until_ns=now_ns + lease_ns)
                )
                if taken.rowcount == 1:
                    claimed.append(int(row_id))
            if not claimed:
                return []
            rows = conn.execute(
                select(AlertOutboxRow).where(AlertOutboxRow.id.in_(claimed)).order_by(AlertOutboxRow.id)
            )
            return [_notification(row) for row in rows]

    def delivered(self, notification_id: int, now_ns: int) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(AlertOutboxRow)
                .where(AlertOutboxRow.id == notification_id)
                .values(outcome="sent", sent_ns=now_ns, attempts=AlertOutboxRow.attempts + 1, last_error=None)
            )

    def failed_attempt(self, notification_id: int, error: str, next_ns: int | None) -> None:
        """One failed try: retry at ``next_ns``, or give up (None)."""
        values: dict[str, Any] = {"attempts": AlertOutboxRow.attempts + 1, "last_error": error[:2000]}
        if next_ns is None:
            values["outcome"] = "failed"
        else:
            values.update(next_ns=next_ns, claimed_until_ns=0)
        with self._engine.begin() as conn:
            conn.execute(update(AlertOutboxRow).where(AlertOutboxRow.id == notification_id).values(**values))

    def outbox(self, limit: int = 1000) -> list[Notification]:
        with self._engine.connect() as conn:
            query = select(AlertOutboxRow).order_by(AlertOutboxRow.id.desc()).limit(limit)
            return [_notification(row) for row in conn.execute(query)]

    def pending_count(self) -> int:
        with self._engine.connect() as conn:
            query = select(func.count()).select_from(AlertOutboxRow).where(AlertOutboxRow.outcome == "pending")
            return int(conn.execute(query).scalar_one())


#: (series, shape, time, duration, totals); totals as stored: JSON text on SQLite, a list on PostgreSQL.
Point = tuple[int, int, int, int, "str | list[int]"]


def profile_points(engine: Engine, series_ids: Sequence[int], start_ns: int, end_ns: int, limit: int) -> list[Point]:
    """The rows rules read, oldest first: raw profiles of the series in ``[start, end)``, no blobs.

    Totals are not decoded here: a round reads hundreds of thousands of rows
    and needs one entry of each, so the caller picks it out of the text.
    Raises :class:`TooManyRows` past ``limit``.
    """
    rows: list[Point] = []
    totals = type_coerce(ProfileRow.totals, Text)
    with engine.connect() as conn:
        for part in chunks(list(series_ids), 500):
            query = (
                select(ProfileRow.series_id, ProfileRow.shape_id, ProfileRow.time_ns, ProfileRow.duration_ns, totals)
                .where(ProfileRow.series_id.in_(part), ProfileRow.time_ns >= start_ns, ProfileRow.time_ns < end_ns)
                .limit(limit - len(rows) + 1)
            )
            rows.extend(tuple(row) for row in conn.execute(query))  # type: ignore[misc]
            if len(rows) > limit:
                raise TooManyRows(limit)
    rows.sort(key=lambda row: row[2])
    return rows
