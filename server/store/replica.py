"""Queries on a PostgreSQL hot standby: one engine whose connections go to the standby while it keeps up.

Writes always go to the primary (the store's own engine). Queries may use a
second engine, built here, whose pool opens each connection on the standby
while the standby is reachable and no further behind than ``max_lag_s``, and
on the primary otherwise. A connection already in the pool that points at
the server no longer preferred is dropped at checkout and opened again on
the other one, so a standby that falls behind stops serving within one
check, and one that catches up serves again within one check.

Lag is measured without trusting either server's clock: every check reads
the primary's flushed WAL position and the standby's replayed position. The
positions the primary reached are remembered with the (monotonic) time they
were seen, and the lag is the time since the oldest one the standby has not
replayed yet: a lower bound, exact to one check interval. A standby that is
down is noticed by the check, or at once when a connection to it fails
(the pool's ping, or opening one), and the query goes to the primary.

What the standby cannot give is read-your-writes: a profile the primary
has just stored is visible on the standby only once it is replayed, up to
the lag (``docs/scaling.md``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import NullPool

from server.store.availability import describe, is_unavailable
from server.store.database import POSTGRES_CONNECT_TIMEOUT_S

log = logging.getLogger(__name__)

STANDBY = "standby"
PRIMARY = "primary"
#: The server a request started reading from; see :meth:`ReadReplica.pin`.
_pinned: ContextVar[str | None] = ContextVar("stackyard_read_pin", default=None)
#: Primary WAL positions remembered while the standby has not replayed them (one per check at most).
MAX_MARKS = 4096


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """What the last check saw: whether queries go to the standby, and why not when they don't."""

    reachable: bool
    lag_s: float  # NaN while unknown (standby down, or not yet checked)
    serving: bool
    reason: str


def lsn(value: str) -> int:
    """A PostgreSQL WAL position ("16/B374D848") as one integer, so positions of two servers compare."""
    high, _, low = value.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


class ReadReplica:
    """The routed read engine, and the checks that decide where its connections go."""

    def __init__(
        self,
        primary: Engine,
        standby_url: str,
        pool_size: int = 20,
        max_lag_s: float = 30.0,
        check_interval_s: float = 1.0,
    ) -> None:
        self.max_lag_s = max_lag_s
        self._primary = primary
        self._check_interval_s = check_interval_s
        connect_args = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}
        # Unpooled engines only open driver connections: the routed pool below owns them.
        self._standby_opener = create_engine(standby_url, poolclass=NullPool, connect_args=connect_args)
        self._primary_opener = create_engine(
            primary.url.render_as_string(hide_password=False), poolclass=NullPool, connect_args=connect_args
        )
        self._roles: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._marks: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()
        self.status = ReplicaStatus(False, math.nan, False, "not checked yet")
        self.served = {STANDBY: 0, PRIMARY: 0}  # connections handed to queries, per server
        self.engine = create_engine(
            standby_url,
            creator=self._open,
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        event.listen(self.engine, "checkout", self._on_checkout)
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # -- routing -------------------------------------------------------------

    def preferred(self) -> str:
        """Where a connection should point now: the standby while it serves, the primary once a request read there.

        A request that began on the primary stays on it: a profile it listed
        there may not be on the standby yet, so its blobs and sample keys
        must come from the same server. Moving the other way (standby down or
        behind, mid-request) is safe: the primary holds all the standby does.
        """
        if _pinned.get() == PRIMARY:
            return PRIMARY
        return STANDBY if self.status.serving else PRIMARY

    def pin(self) -> None:
        """Start of a request (in its context): from now on it reads where it starts, or moves to the primary."""
        _pinned.set(None)
        _pinned.set(self.preferred())

    def _open(self) -> Any:
        """A new driver connection on the preferred server; the primary when the standby cannot be reached."""
        if self.preferred() == STANDBY:
            try:
                return self._detached(self._standby_opener, STANDBY)
            except Exception as exc:  # the driver's own error (a raw connection is not wrapped): any refusal
                self._set(ReplicaStatus(False, math.nan, False, describe(exc)))
                log.warning("standby unreachable, queries go to the primary", extra={"error": describe(exc)})
        return self._detached(self._primary_opener, PRIMARY)

    def _detached(self, opener: Engine, role: str) -> Any:
        proxied = opener.raw_connection()
        proxied.detach()
        dbapi = proxied.dbapi_connection
        self._roles[dbapi] = role
        return dbapi

    def _on_checkout(self, dbapi: Any, _record: Any, _proxy: Any) -> None:
        role = self._roles.get(dbapi, PRIMARY)
        if role != self.preferred():
            # The pool discards this connection and opens one again (through _open), on the preferred server.
            raise DisconnectionError(f"queries moved from the {role} to the {self.preferred()}")
        with self._lock:
            self.served[role] += 1
        if _pinned.get() is not None:
            _pinned.set(role)

    # -- checks --------------------------------------------------------------

    def check(self) -> ReplicaStatus:
        """Measure the standby now: reachable, in recovery, and how far behind the primary it is."""
        try:
            with self._standby_opener.connect() as conn:
                recovering, replayed = conn.execute(
                    text("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text")
                ).one()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            return self._set(ReplicaStatus(False, math.nan, False, describe(exc)))
        if not recovering or replayed is None:
            return self._set(ReplicaStatus(True, math.nan, False, "not a standby (not in recovery)"))
        try:
            with self._primary.connect() as conn:
                flushed = conn.execute(text("SELECT pg_current_wal_flush_lsn()::text")).scalar_one()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            flushed = None  # the primary is away: the lag so far is what is known
        lag = self._lag(time.monotonic(), lsn(str(flushed)) if flushed is not None else None, lsn(str(replayed)))
        if lag > self.max_lag_s:
            return self._set(ReplicaStatus(True, lag, False, f"{lag:.1f}s behind the primary"))
        return self._set(ReplicaStatus(True, lag, True, ""))

    def _lag(self, now: float, flushed: int | None, replayed: int) -> float:
        with self._lock:
            fresh = flushed is not None and (not self._marks or flushed > self._marks[-1][1])
            if fresh and flushed is not None and len(self._marks) < MAX_MARKS:
                self._marks.append((now, flushed))
            while self._marks and self._marks[0][1] <= replayed:
                self._marks.popleft()
            return now - self._marks[0][0] if self._marks else 0.0

    def _set(self, status: ReplicaStatus) -> ReplicaStatus:
        if status.serving != self.status.serving:
            log.info(
                "queries go to the standby" if status.serving else "queries go to the primary",
                extra={"reason": status.reason, "lag_s": status.lag_s},
            )
        self.status = status
        return status

    # -- life ----------------------------------------------------------------

    def start(self) -> None:
        """Check now, then every ``check_interval_s`` on a thread of its own until :meth:`close`."""
        self._checked()
        self._thread = threading.Thread(target=self._loop, name="standby-check", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.wait(self._check_interval_s):
            self._checked()

    def _checked(self) -> None:
        try:
            self.check()
        except Exception as exc:  # a check must never end the checks; the next one tries again
            log.error("standby check failed", exc_info=exc)
            self._set(ReplicaStatus(False, math.nan, False, describe(exc)))

    def close(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=POSTGRES_CONNECT_TIMEOUT_S + 1)
        self.engine.dispose()
        self._standby_opener.dispose()
        self._primary_opener.dispose()
