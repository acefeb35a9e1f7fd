"""Series: one per (profile kind, label set). Few and hot, so all of them are cached."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import Engine, select

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

    def get_or_create(self, kind: str, labels: dict[str, str]) -> SeriesInfo:
        key = (kind, labels_hash(labels))
        found = self._by_key.get(key)
        if found is not None:
            return found
        with self._lock, self._engine.begin() as conn:
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

    def all(self) -> list[SeriesInfo]:
        """Every series, read afresh: other processes may have created some.

        Series are few (one per instance and kind), so a full read is cheap, and
        unlike an id watermark it cannot miss a row committed out of id order.
        """
        with self._engine.connect() as conn:
            rows = conn.execute(select(Series.id, Series.kind, Series.labels).order_by(Series.id)).all()
        result = [SeriesInfo(series_id, kind, dict(labels)) for series_id, kind, labels in rows]
        with self._lock:
            for info in result:
                self._by_key[(info.kind, labels_hash(info.labels))] = info
        return result
