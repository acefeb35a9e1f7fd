"""Raw bytes in, stored profile out: the one path every profile takes, pushed or scraped.

Nothing is written until the profile has been fully decoded and validated, so
a rejected upload leaves the database exactly as it was.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from prometheus_client import Counter

from server.errors import Conflict, InvalidParameter, LimitExceeded, PayloadTooLarge, TooOld
from server.ingest.storelimits import StoreLimits, decode_limits, decode_refusal
from server.pprof.decode import decode_columns
from server.pprof.errors import DecodeLimitError, ProfileTooLargeError
from server.pprof.header import Header, infer_kind_of
from server.pprof.kinds import KINDS
from server.pprof.select import SampleView, select_sample_types
from server.settings import Settings
from server.store import idempotency
from server.store.repository import Store, StoredProfile
from server.syntax.labels import check_labels
from server.syntax.times import check_time_ns, format_time, parse_duration_ns

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IngestAnswer:
    """What a push learns of its profile: plain data, so an ingest worker process can send it back."""

    id: int
    series_id: int
    labels: dict[str, str]
    kind: str
    time_ns: int
    samples: int
    totals: dict[str, int]  # per sample type
    replayed: bool  # stored before under this idempotency key: the same profile, not a new one


@dataclass(frozen=True, slots=True)
class IngestResult:
    stored: StoredProfile
    kind: str
    header: Header

    def totals_by_name(self) -> dict[str, int]:
        return {vt.type: total for vt, total in zip(self.header.sample_types, self.stored.totals, strict=True)}

    def answer(self) -> IngestAnswer:
        """What a push is answered (built here: worker processes build it too)."""
        stored = self.stored
        return IngestAnswer(
            id=stored.id,
            series_id=stored.series.id,
            labels=stored.series.labels,
            kind=self.kind,
            time_ns=stored.time_ns,
            samples=stored.samples,
            totals=self.totals_by_name(),
            replayed=not stored.created,
        )


def check_kind(kind: str | None) -> str | None:
    if kind is not None and kind not in KINDS:
        raise InvalidParameter("type", f"unknown profile type {kind!r}; expected one of {', '.join(KINDS)}")
    return kind


def check_idempotency_key(key: str | None) -> None:
    if key is None:
        return
    if not key or len(key) > idempotency.MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise InvalidParameter(
            "Idempotency-Key", f"expected 1 to {idempotency.MAX_KEY_LENGTH} printable ASCII characters"
        )


def ingest(
    store: Store,
    settings: Settings,
    data: bytes,
    labels: dict[str, str],
    kind: str | None = None,
    time_ns: int | None = None,
    rejections: Counter | None = None,
    idempotency_key: str | None = None,
    view: SampleView | None = None,
) -> IngestResult:
    """Decode, check and store one profile; ``rejections`` counts refusals by store limit.

    ``view`` stores only some of the profile's sample types (a Pyroscope heap upload is
    stored as ``heap`` with its ``inuse_*`` types and as ``allocs`` with its ``alloc_*`` ones).
    """
    try:
        return _ingest(store, settings, data, labels, kind, time_ns, idempotency_key, view)
    except LimitExceeded as exc:
        if rejections is not None:
            rejections.labels(exc.limit).inc()
        log.info("ingest", extra={"outcome": "rejected", "limit": exc.limit, "service": labels.get("service")})
        raise


def _ingest(
    store: Store,
    settings: Settings,
    data: bytes,
    labels: dict[str, str],
    kind: str | None,
    time_ns: int | None,
    idempotency_key: str | None = None,
    view: SampleView | None = None,
) -> IngestResult:
    started = time.perf_counter()
    limits = StoreLimits.of(settings)
    check_labels(labels, limits=limits.labels)
    check_kind(kind)
    check_idempotency_key(idempotency_key)
    if not data:
        raise InvalidParameter("body", "empty body: expected a pprof profile (gzip-compressed or not)")
    if len(data) > settings.max_body_bytes:
        raise PayloadTooLarge(f"body: {len(data)} bytes exceeds the limit of {settings.max_body_bytes} bytes")
    try:
        columns = decode_columns(data, settings.max_decompressed_bytes, decode_limits(settings))
    except DecodeLimitError as exc:
        raise decode_refusal(exc) from None
    except ProfileTooLargeError as exc:
        raise PayloadTooLarge(str(exc)) from None
    if columns.strings_with_nul:
        log.warning(
            "profile strings with NUL stored with U+FFFD in its place",
            extra={"strings": columns.strings_with_nul, "service": labels.get("service")},
        )
    if view is not None:
        columns = select_sample_types(columns, view)
    header = Header.of(columns)
    if not header.sample_types:
        raise InvalidParameter("body", "malformed profile: it declares no sample types")
    if kind is None:
        kind = infer_kind_of(columns, header)
        if kind is None:
            names = ", ".join(str(v) for v in header.sample_types)
            raise InvalidParameter("type", f"cannot tell the profile type from its sample types ({names}); pass type=")
    if time_ns is None and header.time_nanos:
        check_time_ns(header.time_nanos, "time_nanos", "; give the profile a time with time=")
    when = time_ns if time_ns is not None else (header.time_nanos or time.time_ns())
    oldest = time.time_ns() - parse_duration_ns(settings.retention_raw)
    if when < oldest:
        # Its bucket may be rolled up from raw profiles that retention already deleted: storing it
        # would make the rebuilt rollup lose them.
        raise TooOld(format_time(when), settings.retention_raw)
    try:
        stored = store.write(
            columns, header, kind, labels, when, idempotency_key, max_series_per_service=limits.series_per_service
        )
    except idempotency.KeyReused as exc:
        raise Conflict(f"idempotency key: {exc}") from None
    log.info(
        "ingest",
        extra={
            "outcome": "stored" if stored.created else "replayed",
            "profile_id": stored.id,
            "service": labels.get("service"),
            "kind": kind,
            "samples": stored.samples,
            "bytes": len(data),
            "ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )
    return IngestResult(stored, kind, header)
