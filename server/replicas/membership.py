"""This replica's membership: heartbeats, its share of the targets, and whether it leads upkeep.

Each replica beats every ``member_heartbeat_interval`` (one transaction on a
connection of its own, so heartbeats never queue behind ingest): it refreshes
its row, reads the live members and takes or renews the upkeep lease. From
the last beat that succeeded it answers three questions, all of them cheap and
without I/O, so the scraper can ask before every scrape:

- ``live()``: may it scrape at all? Only while its own row is still alive as
  the others judge it, measured from the moment before that beat was sent:
  a replica cut off from the database stops before anyone can have taken
  its targets, and a shorter cut (a restarting database) loses nothing.
  After joining (or coming back) it waits one heartbeat first, so the others
  have seen it and dropped its share before it starts.
- ``owns(key)``: is the target its own? Rendezvous hashing over the live members.
- ``leading()``: does it hold the upkeep lease? It lets go a heartbeat before
  the lease expires in the database, so two leaders never overlap by clock.

On SQLite there is one process and no heartbeat: :class:`Solo` owns every
target and always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from server.scrape.rendezvous import owner
from server.settings import Settings
from server.store.availability import describe, log_failure
from server.store.database import make_engine
from server.store.members import Beat, Member, MemberTable

log = logging.getLogger(__name__)

#: The lease upkeep jobs (rollups, retention, GC) and alert evaluation run under.
UPKEEP_LEASE = "upkeep"


class Solo:
    """One process on its own database (SQLite): every target is its own and it always leads."""

    def __init__(self, member_id: str = "solo") -> None:
        self.id = member_id
        self.failures = 0

    def live(self) -> bool:
        return True

    def owns(self, key: str) -> bool:
        return True

    def leading(self) -> bool:
        return True

    def members(self) -> tuple[str, ...]:
        return (self.id,)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class _Seen:
    beat: Beat
    sent: float  # time.monotonic() just before the beat was sent: the database's time of it is no earlier


def new_member() -> Member:
    """This process as a member: a fresh id per start (a restart is a leave and a join), its host and pid."""
    return Member(uuid.uuid4().hex[:16], socket.gethostname(), os.getpid())


class Membership:
    """Heartbeats on a shared database and the answers drawn from the last one that succeeded."""

    def __init__(
        self,
        table: MemberTable,
        heartbeat_s: float,
        timeout_s: float,
        me: Member | None = None,
        on_change: Callable[[], None] = lambda: None,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        """``ready``: whether the schema is migrated yet (``serve`` may start before its database)."""
        self.table = table
        self._ready = ready
        self.me = me or new_member()
        self.heartbeat_s = heartbeat_s
        self.timeout_s = timeout_s
        self._on_change = on_change
        self._seen: _Seen | None = None
        self._live_since: float | None = None  # when it last became live after not being so
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._beating: asyncio.Future[Beat] | None = None
        self._shown: tuple[bool, tuple[str, ...], bool] = (False, (), False)
        self.failures = 0
        self.last_error = ""

    @classmethod
    def for_settings(cls, settings: Settings, ready: Callable[[], bool] = lambda: True) -> Membership:
        """A membership on its own small engine: heartbeats must not wait for a pool busy with ingest."""
        engine = make_engine(settings.database_url, pool_size=1)
        return cls(MemberTable(engine), settings.member_heartbeat_interval, settings.member_timeout, ready=ready)

    @property
    def id(self) -> str:
        return self.me.id

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever ``live()``, ``members()`` or ``leading()`` changes (from the event loop)."""
        self._on_change = callback

    # -- the answers ------------------------------------------------------------

    def _current(self) -> _Seen | None:
        seen = self._seen
        if seen is None or time.monotonic() - seen.sent >= self.timeout_s:
            return None  # its row is dead to the others by now (or will be before they look again)
        return seen

    def live(self) -> bool:
        seen = self._current()
        if seen is None or self.id not in seen.beat.members or self._live_since is None:
            return False
        return time.monotonic() - self._live_since >= self.heartbeat_s

    def owns(self, key: str) -> bool:
        seen = self._seen
        return seen is not None and self.live() and owner(key, seen.beat.members) == self.id

    def leading(self) -> bool:
        seen = self._seen
        if seen is None or UPKEEP_LEASE not in seen.beat.leases:
            return False
        # Let go one heartbeat before the lease expires in the database: no two leaders at once.
        return time.monotonic() - seen.sent < self.timeout_s - self.heartbeat_s

    def members(self) -> tuple[str, ...]:
        seen = self._current()
        return seen.beat.members if seen is not None else ()

    # -- the heartbeat ------------------------------------------------------------

    async def beat_once(self) -> bool:
        """One heartbeat; True if it reached the database. At most one is in flight (a hung one is waited out)."""
        if not self._ready() or (self._beating is not None and not self._beating.done()):
            self._announce()
            return False
        sent = time.monotonic()
        was_live = self.id in self.members()  # else (first beat, or dead to the others) this beat is a join
        self._beating = asyncio.ensure_future(
            asyncio.to_thread(self.table.beat, self.me, self.timeout_s, (UPKEEP_LEASE,))
        )
        self._beating.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            beat = await asyncio.wait_for(asyncio.shield(self._beating), self.timeout_s)
        except Exception as exc:
            self.failures += 1
            self.last_error = describe(exc) if not isinstance(exc, TimeoutError) else "heartbeat timed out"
            log_failure(log, "heartbeat failed", exc)
            self._announce()
            return False
        self._seen = _Seen(beat, sent)
        if not was_live and self.id in beat.members:
            self._live_since = time.monotonic()
        self.last_error = ""
        self._announce()
        return True

    def _announce(self) -> None:
        """Tell the scraper when what it should scrape changed, and log the change once."""
        shown = (self.live(), self.members(), self.leading())
        if shown == self._shown:
            return
        self._shown = shown
        log.info(
            "membership",
            extra={"member": self.id, "live": shown[0], "members": len(shown[1]), "leader": shown[2]},
        )
        self._on_change()

    async def _loop(self) -> None:
        # The flag, not only the cancel, ends the loop: on Python 3.11 ``wait_for`` can swallow a cancel that
        # lands as the beat it waits on completes, and the loop would beat on after ``stop``.
        while not self._stopping:
            with contextlib.suppress(Exception):  # beat_once reports its own failures; this loop must not end
                await self.beat_once()
            await asyncio.sleep(self.heartbeat_s)

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name="membership")

    async def stop(self) -> None:
        """Stop beating and leave: the others take this replica's targets and lease at their next heartbeat."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await asyncio.wait_for(asyncio.to_thread(self.table.leave, self.id), self.timeout_s)
        except Exception as exc:  # the database is away: the row dies of old age instead
            log_failure(log, "leaving the membership failed", exc)
        self._seen = None
        await asyncio.to_thread(self.table.engine.dispose)


class ReplicaCollector(Collector):
    """``/metrics``: whether this replica scrapes, the members it sees, whether it leads upkeep."""

    def __init__(self, replicas: Solo | Membership) -> None:
        self._replicas = replicas

    def collect(self) -> Iterable[Metric]:
        live = GaugeMetricFamily(
            "stackyard_replica_live", "1 while this replica's heartbeat is current and it scrapes its share."
        )
        live.add_metric([], 1 if self._replicas.live() else 0)
        members = GaugeMetricFamily("stackyard_replica_members", "Live replicas this replica sees, itself included.")
        members.add_metric([], len(self._replicas.members()))
        leader = GaugeMetricFamily(
            "stackyard_replica_leader", "1 if this replica runs upkeep and alert evaluation (holds the lease)."
        )
        leader.add_metric([], 1 if self._replicas.leading() else 0)
        info = GaugeMetricFamily("stackyard_replica_info", "This replica's member id.", labels=["member"])
        info.add_metric([self._replicas.id], 1)
        failures = CounterMetricFamily(
            "stackyard_replica_heartbeat_failures", "Heartbeats that did not reach the database."
        )
        failures.add_metric([], self._replicas.failures)
        return [live, members, leader, info, failures]
