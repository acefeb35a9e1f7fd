"""Is the database there? Telling an outage from a bug, and migrating at start without crashing.

PostgreSQL restarts, fails over or is briefly unreachable; none of that is a
reason for Stackyard to exit or to lose profiles. Errors that mean "the
database cannot be reached right now" are told apart from every other error
here, once, so the API answers them with 503 (retry later) and the in-process
collector keeps them in its buffer, while real bugs still surface as bugs.

:class:`DatabaseGate` runs the migrations at start: once synchronously (so an
ordinary start is migrated before the first request), then, if the database
was not there, in the background with backoff. Until it has succeeded the API
answers 503 and ``/readyz`` says why.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from server.errors import DatabaseUnavailable, Unavailable

log = logging.getLogger(__name__)


def is_unavailable(exc: BaseException) -> bool:
    """True for errors that mean the database is unreachable or refusing work for now, not a broken request.

    SQLite's "database is locked" is an OperationalError too: retrying later is
    also the right answer to it.
    """
    if isinstance(exc, (Unavailable, OperationalError, InterfaceError, PoolTimeout)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


#: SQLSTATEs of a transaction PostgreSQL aborted only to break a conflict with another: deadlock_detected,
#: serialization_failure. Nothing of it was written, and the same transaction run again normally succeeds.
_CONFLICTS = frozenset({"40P01", "40001"})
#: check_violation: among its causes, a row routed to a default partition just before a partition for its
#: range was attached (the insert then waited for the default's lock). The statement saw the partitions as
#: they were when it started; run again, it routes the row to the new partition.
_CHECK_VIOLATION = "23514"
_STALE_ROUTING = "violates partition constraint"


def is_transient_conflict(exc: BaseException) -> bool:
    """True when the database rolled the transaction back only because of what another did meanwhile: to break
    a lock conflict (a deadlock), or a row routed to a default partition a concurrent attach narrowed. Retry it.
    """
    if not isinstance(exc, DBAPIError):
        return False
    origin = getattr(exc, "orig", None)
    state = getattr(origin, "sqlstate", None)
    if state == _CHECK_VIOLATION:
        return _STALE_ROUTING in str(origin)
    return state in _CONFLICTS


def describe(exc: BaseException) -> str:
    """The first line of the driver's message: enough to tell "connection refused" from "no such host"."""
    if isinstance(exc, Unavailable):
        return exc.reason
    origin = getattr(exc, "orig", None) or exc
    text = str(origin).strip().splitlines()
    return text[0] if text else type(origin).__name__


class DatabaseGate:
    """Whether the schema is migrated and usable yet; retries the migration with backoff until it is."""

    def __init__(self, migrate: Callable[[], None], max_backoff_s: float = 10.0) -> None:
        self._migrate = migrate
        self._max_backoff_s = max_backoff_s
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self.reason = "not migrated yet"
        self.attempts = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def check(self) -> None:
        """Raise :class:`DatabaseUnavailable` while the schema is not known to be in place."""
        if not self._ready.is_set():
            raise DatabaseUnavailable(self.reason)

    def try_once(self) -> bool:
        self.attempts += 1
        try:
            self._migrate()
        except Exception as exc:
            if not is_unavailable(exc):
                raise  # a broken migration or a wrong URL scheme must not look like an outage
            self.reason = describe(exc)
            log.warning("database unavailable at start", extra={"error": self.reason, "attempt": self.attempts})
            return False
        self.reason = ""
        self._ready.set()
        log.info("database ready", extra={"attempts": self.attempts})
        return True

    async def start(self) -> None:
        """Migrate now if the database is there, else keep trying in the background and let the server start."""
        if not await asyncio.to_thread(self.try_once):
            self._task = asyncio.create_task(self._retry(), name="database-gate")

    async def _retry(self) -> None:
        backoff = 0.5
        while not self._stopped.is_set():
            await asyncio.sleep(backoff)
            if await asyncio.to_thread(self.try_once):
                return
            backoff = min(backoff * 2, self._max_backoff_s)

    async def stop(self) -> None:
        self._stopped.set()
        if self._task is not None:
            self._task.cancel()


def log_failure(logger: logging.Logger, event: str, exc: BaseException) -> None:
    """A background job's failure: one line while the database is away (it says why), a traceback otherwise.

    An outage makes every job fail every round; a traceback per job per
    second buries the one line that matters and can fill a log pipe.
    """
    if is_unavailable(exc):
        logger.warning(event, extra={"error": describe(exc)})
    else:
        logger.error(event, exc_info=exc)
