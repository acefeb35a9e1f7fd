"""Profiles decoded and stored in worker processes, off the API process's interpreter lock.

Why: in one process, decoding and storing a profile (about 1.7 ms of Python
and numpy per demo-sized one) and the dashboard's queries take turns on one
interpreter lock, so an ingest burst makes every query wait, however many cores
the machine has. Worker processes each have their own lock, dedup caches and
connection pool. The store is built for several writers at once (server
replicas), so nothing about storage changes; and because the API process
keeps HTTP, queries, scraping, upkeep jobs and ``/metrics``, there is still
exactly one of each of those.

Pushes and the in-process collector's pprof profiles come here; goroutine
dumps stay in the API process. A worker answers with plain data (the push's
answer, or an error's status and message), never with an exception object to
unpickle.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from server import logs
from server.errors import DatabaseUnavailable, StackyardError, Unavailable
from server.gcfreeze import freeze_startup_objects, space_full_collections
from server.ingest.profile import IngestAnswer, ingest
from server.pprof.errors import ProfileError, ProfileTooLargeError
from server.pprof.select import SampleView
from server.settings import Settings
from server.store.availability import describe, is_unavailable
from server.store.repository import Store

log = logging.getLogger(__name__)


class WorkerFailed(Unavailable):
    """An ingest worker process died mid-write: the profile was not stored, and a retry is safe."""


class RemoteRefusal(StackyardError):
    """A profile a worker refused: the same status and message as in-process ingest would give."""

    def __init__(self, status: int, message: str, limit: str | None) -> None:
        super().__init__(message)
        self.status_code = status
        self.limit = limit


@dataclass(frozen=True, slots=True)
class PushAnswer:
    body: IngestAnswer
    created: bool


# --------------------------------------------------------------------------- inside a worker process


class _Worker:
    """This worker process's store (with its caches) and settings, set once by the pool's initializer."""

    store: Store | None = None
    settings: Settings | None = None


def _start_worker(settings: Settings) -> None:
    logs.configure(settings.log_level, settings.log_format)
    _Worker.settings = settings
    _Worker.store = Store.from_url(settings.database_url, settings.database_pool_size)
    freeze_startup_objects(settings.gc_freeze)
    space_full_collections(settings.gc_full_collection_every)


def _ready() -> bool:
    return _Worker.store is not None


def _ingest_here(
    data: bytes,
    labels: dict[str, str],
    kind: str | None,
    time_ns: int | None,
    key: str | None,
    view: SampleView | None = None,
) -> tuple[str, Any]:
    store, settings = _Worker.store, _Worker.settings
    assert store is not None and settings is not None
    try:
        result = ingest(store, settings, data, labels, kind, time_ns, None, key, view)
    except StackyardError as exc:
        return "refused", (exc.status_code, exc.message, getattr(exc, "limit", None))
    except ProfileError as exc:
        return "refused", (413 if isinstance(exc, ProfileTooLargeError) else 400, str(exc), None)
    except Exception as exc:
        if is_unavailable(exc):
            return "unavailable", describe(exc)
        raise  # a bug: the API process logs it and answers 500, as for in-process ingest
    return "stored", (result.answer(), result.stored.created)


# --------------------------------------------------------------------------- in the API process


class IngestWorkers:
    """A pool of ``processes`` spawned workers; a pool broken by a dying worker is replaced."""

    def __init__(self, settings: Settings, processes: int) -> None:
        self._settings = settings
        self._processes = processes
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    async def start(self) -> None:
        self._executor = self._new_executor()
        # Every worker started (and its store opened) now, not by the first pushes of a burst.
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._executor, _ready) for _ in range(self._processes)))
        log.info("ingest workers", extra={"processes": self._processes})

    async def stop(self) -> None:
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.to_thread(executor.shutdown, True, cancel_futures=True)

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._processes,
            mp_context=multiprocessing.get_context("spawn"),  # no fork of a process with threads and sockets
            initializer=_start_worker,
            initargs=(self._settings,),
        )

    async def ingest(
        self,
        data: bytes,
        labels: dict[str, str],
        kind: str | None,
        time_ns: int | None,
        key: str | None,
        view: SampleView | None = None,
    ) -> PushAnswer:
        """Store one push in a worker; refusals raise what in-process ingest would (``limit`` set for store limits)."""
        executor = self._running()
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(
                executor, _ingest_here, data, labels, kind, time_ns, key, view
            )
        except BrokenProcessPool:
            raise self._replace(executor) from None
        return _settle(outcome)

    def ingest_blocking(
        self, data: bytes, labels: dict[str, str], kind: str | None, time_ns: int | None, key: str | None
    ) -> PushAnswer:
        """:meth:`ingest` for a caller in a thread (the in-process collector's sink)."""
        executor = self._running()
        try:
            outcome = executor.submit(_ingest_here, data, labels, kind, time_ns, key).result()
        except BrokenProcessPool:
            raise self._replace(executor) from None
        return _settle(outcome)

    def _running(self) -> ProcessPoolExecutor:
        executor = self._executor
        if executor is None:
            raise WorkerFailed("the ingest workers are not running (the server is starting or stopping)")
        return executor

    def _replace(self, broken: ProcessPoolExecutor) -> WorkerFailed:
        """Start a new pool in place of ``broken`` (once, however many callers saw it break)."""
        with self._lock:
            if self._executor is broken:
                log.error("an ingest worker died; starting a new pool", extra={"processes": self._processes})
                self._executor = self._new_executor()
                broken.shutdown(wait=False, cancel_futures=True)
        return WorkerFailed("an ingest worker process died before storing this profile; try again")


def _settle(outcome: tuple[str, Any]) -> PushAnswer:
    """A worker's plain answer as the in-process result or exception."""
    kind, detail = outcome
    if kind == "unavailable":
        raise DatabaseUnavailable(detail)
    if kind == "refused":
        status, message, limit = detail
        raise RemoteRefusal(status, message, limit)
    body, created = detail
    return PushAnswer(body, created)
