"""A goroutine dump's text in, a stored dump out: the one path every dump takes, scraped or pushed.

Nothing is written until the whole text has parsed, so a truncated dump leaves
the database as it was and comes back as a :class:`~server.goroutines.dump.DumpError`
(a scrape error for the collector, a 400 for a push).
"""

from __future__ import annotations

import logging
import time

from server.errors import PayloadTooLarge, TooOld
from server.goroutines.dump import parse_dump
from server.goroutines.groups import group_goroutines
from server.labels import check_labels
from server.settings import Settings
from server.store.goroutines import DumpInfo
from server.store.repository import Store
from server.timeparse import format_time, parse_duration_ns

log = logging.getLogger(__name__)

#: The series kind dumps are stored under (and the target profile kind that scrapes them).
DUMP_KIND = "goroutine_dump"


def ingest_dump(
    store: Store, settings: Settings, data: bytes, labels: dict[str, str], time_ns: int | None = None
) -> DumpInfo:
    started = time.perf_counter()
    check_labels(labels)
    if len(data) > settings.max_body_bytes:
        raise PayloadTooLarge(f"body: {len(data)} bytes exceeds the limit of {settings.max_body_bytes} bytes")
    goroutines = parse_dump(data)
    groups = group_goroutines(goroutines)
    when = time_ns if time_ns is not None else time.time_ns()
    if when < time.time_ns() - parse_duration_ns(settings.retention_raw):
        raise TooOld(format_time(when), settings.retention_raw)
    series = store.series.get_or_create(DUMP_KIND, labels)
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
