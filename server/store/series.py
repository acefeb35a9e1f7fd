"""Series: one per (profile kind, label set). Few and hot, so all of them are cached."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, func, select

from server.errors import LimitExceeded
from server.store.database import insert_ignoring_conflicts
from server.store.keys import labels_hash
from server.store.models import Series, SeriesLabel


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    id: int
    kind: str
    labels: dict[str, str]


class SeriesTable:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._by_key: dict[tuple[str, int], SeriesInfo] = {}
        self._lock = threading.Lock()
        self._all: list[SeriesInfo] = []
        self._fingerprint: tuple[int, ...] | None = None

    def get_or_create(self, kind: str, labels: dict[str, str], max_per_service: int | None = None) -> SeriesInfo:
        """The series of (kind, labels), created if new, unless its service already has ``max_per_service``.

        The count is taken in the creating transaction; writers in other
        processes creating series of the same service at the same moment may
        each pass it, so the limit can be overshot by their number, never more.
        """
        key = (kind, labels_hash(labels))
        found = self._by_key.get(key)
        if found is not None:
            return found
        with self._lock, self._engine.begin() as conn:
            if max_per_service is not None:
                self._check_room(conn, kind, key[1], labels, max_per_service)
            insert_ignoring_conflicts(conn, Series.__table__, [{"kind": kind, "labels_hash": key[1], "labels": labels}])  # type: ignore[arg-type]
            series_id = conn.execute(
                select(Series.id).where(Series.kind == kind, Series.labels_hash == key[1])
            ).scalar_one()
            insert_ignoring_conflicts(
                conn,
                SeriesLabel.__table__,  # type: ignore[arg-type]
                [{"series_id": series_id, "name": name, "value": value} for name, value in labels.items()],
            )
        info = SeriesInfo(series_id, kind, dict(labels))
        self._by_key[key] = info
        return info

    @staticmethod
    def _check_room(conn: Connection, kind: str, digest: int, labels: dict[str, str], limit: int) -> None:
        exists = conn.execute(select(Series.id).where(Series.kind == kind, Series.labels_hash == digest)).first()
        if exists is not None:
            return
        service = labels.get("service", "")
        count = conn.execute(
            select(func.count())
            .select_from(SeriesLabel)
            .where(SeriesLabel.name == "service", SeriesLabel.value == service)
        ).scalar_one()
        if count >= limit:
            raise LimitExceeded(
                "series_per_service",
                f"series limit: service {service!r} already has {count} series, the limit "
                f"(max_series_per_service); a new label set or profile type is refused",
                422,
            )

    def all(self) -> list[SeriesInfo]:
        """Every series, current as of this call: other processes may have created some.

        Every query starts here, so the full table is read only when it
        changed. Series are never updated or deleted and ids only grow, so
        (count, max id, sum of ids) changes whenever a row appears, even one
        committed out of id order, which an id watermark alone would miss.
        """
        with self._engine.connect() as conn:
            fingerprint = tuple(
                conn.execute(
                    select(func.count(), func.coalesce(func.max(Series.id), 0), func.coalesce(func.sum(Series.id), 0))
                ).one()
            )
            if fingerprint == self._fingerprint:
                return list(self._all)
            rows = conn.execute(select(Series.id, Series.kind, Series.labels).order_by(Series.id)).all()
        result = [SeriesInfo(series_id, kind, dict(labels)) for series_id, kind, labels in rows]
        with self._lock:
            for info in result:
                self._by_key.setdefault((info.kind, labels_hash(info.labels)), info)
            # Read before the rows, the fingerprint can only be older than them: at worst one extra re-read,
            # never a cached list missing a row that the fingerprint counts.
            self._all, self._fingerprint = result, fingerprint
        return list(result)
