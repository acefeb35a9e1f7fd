"""Alerting as the server runs it: the rules and receivers of the config file and the API, and the jobs.

Config-file rules and receivers are fixed for the life of the process;
API-made ones live in the database, so every replica (and the next restart)
sees them. Names are unique across both. Two APScheduler jobs run in the
server's event loop: evaluation every ``rule_eval_interval`` (in a worker
thread), and the outbox every ``notify_interval``; neither waits for the other.
Among replicas only the one holding the upkeep lease runs them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from server.alerts.evaluate import Evaluator, RoundResult
from server.alerts.notify import Dispatcher
from server.alerts.receivers import Receiver
from server.alerts.rules import Rule, parse_rule
from server.errors import InvalidParameter, NotFound
from server.settings import Settings
from server.store.availability import log_failure
from server.store.registry import Conflict
from server.store.repository import Store

log = logging.getLogger(__name__)


class Alerting:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        rules: Sequence[Rule] = (),
        receivers: Sequence[Receiver] = (),
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        """``leading``: whether this replica evaluates and notifies (it holds the upkeep lease; always, alone)."""
        self.leading = leading
        self.store = store
        self.settings = settings
        self.config_rules = {rule.name: rule for rule in rules}
        self.config_receivers = {receiver.name: receiver for receiver in receivers}
        self.evaluator = Evaluator(store, settings, self.rules, self.receivers_by_name)
        self.dispatcher: Dispatcher | None = None
        self._scheduler: AsyncIOScheduler | None = None

    # ------------------------------------------------------------------ rules and receivers

    def rules(self) -> list[Rule]:
        stored = []
        for spec, created_ns in self.store.alerts.rule_specs():
            try:
                stored.append(replace(parse_rule(spec), created_ns=created_ns))
            except InvalidParameter as exc:  # written by an older version that allowed it: skip, say so
                log.error("stored rule no longer valid", extra={"rule": spec.get("name"), "error": exc.message})
        return [*self.config_rules.values(), *(r for r in stored if r.name not in self.config_rules)]

    def receivers_by_name(self) -> dict[str, Receiver]:
        found = dict(self.config_receivers)
        for name, url in self.store.alerts.receivers():
            found.setdefault(name, Receiver(name, url))
        return found

    def add_rule(self, rule: Rule) -> Rule:
        if rule.name in self.config_rules:
            raise Conflict(f"a rule named {rule.name!r} is defined in the config file")
        if rule.receiver is not None and rule.receiver not in self.receivers_by_name():
            raise InvalidParameter("receiver", f"no receiver named {rule.receiver!r}; create it first")
        spec = {k: v for k, v in rule.to_json().items() if k != "source"}
        self.store.alerts.add_rule(rule.name, spec)
        return rule

    def replace_rule(self, rule: Rule) -> Rule:
        """Edit a rule of the API. Its current alerts stay and are judged by the new definition at the next
        round, as Prometheus keeps a rule's alerts across a reload: a firing alert whose condition no longer
        holds resolves (and is notified), one that still holds keeps firing without a second notification."""
        if rule.name in self.config_rules:
            raise Conflict(f"rule {rule.name!r} is defined in the config file; change it there")
        if rule.receiver is not None and rule.receiver not in self.receivers_by_name():
            raise InvalidParameter("receiver", f"no receiver named {rule.receiver!r}; create it first")
        spec = {k: v for k, v in rule.to_json().items() if k != "source"}
        self.store.alerts.replace_rule(rule.name, spec)
        return rule

    def delete_rule(self, name: str) -> None:
        if name in self.config_rules:
            raise Conflict(f"rule {name!r} is defined in the config file; remove it there")
        self.store.alerts.delete_rule(name)

    def add_receiver(self, receiver: Receiver) -> Receiver:
        if receiver.name in self.config_receivers:
            raise Conflict(f"a receiver named {receiver.name!r} is defined in the config file")
        self.store.alerts.add_receiver(receiver.name, receiver.webhook_url)
        return receiver

    def delete_receiver(self, name: str) -> None:
        if name in self.config_receivers:
            raise Conflict(f"receiver {name!r} is defined in the config file; remove it there")
        if name not in self.receivers_by_name():
            raise NotFound(f"no receiver named {name!r}")
        users = [rule.name for rule in self.rules() if rule.receiver == name]
        if users:
            raise Conflict(f"receiver {name!r} is used by rule(s) {', '.join(users)}; delete or change them first")
        self.store.alerts.delete_receiver(name)

    # ------------------------------------------------------------------ jobs

    async def start(self) -> None:
        self.dispatcher = Dispatcher(self.store, self.settings)
        self._scheduler = AsyncIOScheduler(job_defaults={"coalesce": True, "max_instances": 1})
        self._scheduler.add_job(self.evaluate, "interval", seconds=self.settings.rule_eval_interval)
        self._scheduler.add_job(self.dispatch, "interval", seconds=self.settings.notify_interval)
        if self.settings.alertmanager_url:
            self._scheduler.add_job(self.resend, "interval", seconds=self.settings.alertmanager_resend_interval)
        self._scheduler.start()

    async def evaluate(self) -> RoundResult | None:
        if not self.leading():
            return None  # another replica evaluates: one round per interval for the fleet, not one per replica
        try:
            return await asyncio.to_thread(self.evaluator.evaluate)
        except Exception as exc:  # evaluation must never take the server down; the next round retries
            log_failure(log, "rule evaluation round failed", exc)
            return None

    async def dispatch(self) -> None:
        if self.dispatcher is None or not self.leading():
            return
        try:
            await self.dispatcher.run_once()
        except Exception as exc:  # likewise (the database may be away for a moment)
            log_failure(log, "notification round failed", exc)

    async def resend(self) -> None:
        if self.dispatcher is None or not self.leading():
            return
        try:
            await self.dispatcher.resend()
        except Exception as exc:  # likewise
            log_failure(log, "alertmanager re-send failed", exc)

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self.dispatcher is not None:
            await self.dispatcher.close()
            self.dispatcher = None
