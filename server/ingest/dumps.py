"""A goroutine dump's text in, a stored dump out: the one path every dump takes, scraped or pushed.

Nothing is written until the whole text has parsed, so a truncated dump leaves
the database as it was and comes back as a :class:`~server.goroutines.parse.DumpError`
(a scrape error for the collector, a 400 for a push). A dump meets the same
store limits as a pprof profile (labels, series per service, counted in
``stackyard_limit_rejections_total``), plus its own goroutine count, checked
while it parses.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter

from server.errors import LimitExceeded, TooOld
from server.goroutines.groups import group_goroutines
from server.goroutines.parse import parse_dump
from server.ingest.storelimits import StoreLimits
from server.scrape.spec import DUMP_KIND
from server.settings import Settings
from server.store.dumps import DumpInfo
from server.store.repository import Store
from server.syntax.labels import check_labels
from server.syntax.times import format_time, parse_duration_ns

log = logging.getLogger(__name__)


def ingest_dump(
    store: Store,
    settings: Settings,
    data: bytes,
    labels: dict[str, str],
    time_ns: int | None = None,
    rejections: Counter | None = None,
) -> DumpInfo:
    """Parse, check and store one dump; ``rejections`` counts refusals by store limit."""
    try:
        return _ingest_dump(store, settings, data, labels, time_ns)
    except LimitExceeded as exc:
        if rejections is not None:
            rejections.labels(exc.limit).inc()
        log.info(
            "ingest goroutine dump",
            extra={"outcome": "rejected", "limit": exc.limit, "service": labels.get("service")},
        )
        raise


def _ingest_dump(
    store: Store, settings: Settings, data: bytes, labels: dict[str, str], time_ns: int | None
) -> DumpInfo:
    started = time.perf_counter()
    limits = StoreLimits.of(settings)
    check_labels(labels, limits=limits.labels)
    goroutines = parse_dump(data, settings.max_dump_goroutines, settings.max_body_bytes, settings.max_dump_stacks)
    if b"\0" in data:
        log.warning("goroutine dump with NUL stored with U+FFFD in its place", extra={"service": labels.get("service")})
    groups = group_goroutines(goroutines)
    when = time_ns if time_ns is not None else time.time_ns()
    if when < time.time_ns() - parse_duration_ns(settings.retention_raw):
        raise TooOld(format_time(when), settings.retention_raw)
    series = store.series.get_or_create(DUMP_KIND, labels, limits.series_per_service)
    stored = store.goroutines.write(series.id, when, len(goroutines), groups)
    log.info(
        "ingest goroutine dump",
        extra={
            "outcome": "stored",
            "dump_id": stored.id,
            "service": labels.get("service"),
            "goroutines": len(goroutines),
            "groups": len(groups),
            "bytes": len(data),
            "ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )
    return stored
