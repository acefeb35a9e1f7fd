"""Profile rows, their shapes and their sample blobs: writing one, listing many, reading blobs in bulk."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text, update

from server.store.database import SqliteStatement, chunks, insert_ignoring_conflicts
from server.store.keys import hash64
from server.store.models import ProfileBlob, ProfileRow, ProfileShape, StoreState

#: Built once: every profile's transaction runs them, and building a statement costs more than running it.
_INSERT_ROWS = insert(ProfileRow).returning(ProfileRow.id, sort_by_parameter_order=True)
_INSERT_BLOBS = insert(ProfileBlob)
#: One profile's row and blob on SQLite, as a profile that brings new stacks writes them (in its segments'
#: transaction): without SQLAlchemy's per-statement work (database.SqliteStatement).
_ROW_KEYS = ("series_id", "shape_id", "time_ns", "duration_ns", "period", "samples", "totals", "idempotency_key")
_SQLITE_INSERT_ROW = SqliteStatement(insert(ProfileRow).returning(ProfileRow.id), _ROW_KEYS)
_SQLITE_INSERT_BLOB = SqliteStatement(insert(ProfileBlob), ("profile_id", "time_ns", "series_id", "data"))

#: Advisory lock class of idempotency keys (PostgreSQL's two-key form, apart from the one-key locks elsewhere).
KEY_LOCK_CLASS = 7301


def _insert_one(conn: Connection, row: dict[str, Any], blob: bytes) -> tuple[int, bool]:
    """A row without an idempotency key, and its blob, on SQLite: (its id, True)."""
    values = {key: row[key] for key in _ROW_KEYS}
    values["totals"] = json.dumps(row["totals"])  # what the JSON column's own serializer writes
    profile_id = int(_SQLITE_INSERT_ROW.run(conn, values).scalar_one())
    _SQLITE_INSERT_BLOB.run(
        conn, {"profile_id": profile_id, "time_ns": row["time_ns"], "series_id": row["series_id"], "data": blob}
    )
    return profile_id, True


def lock_keys(conn: Connection, keys: Sequence[str]) -> None:
    """Hold each key (in a fixed order, so two writers cannot wait on each other) until the transaction ends.

    PostgreSQL: an advisory lock per key (32 bits of the key's sha256 name
    the lock; a collision only makes two writers wait), all of a batch's in
    one statement, taken in the array's order. SQLite: the write lock, taken
    by a no-op write, serialises every writer anyway.
    """
    if conn.dialect.name == "postgresql":
        numbers = sorted(
            {int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big", signed=True) for key in keys}
        )
        conn.execute(
            text("SELECT count(pg_advisory_xact_lock(:cls, n)) FROM unnest(CAST(:numbers AS integer[])) AS n"),
            {"cls": KEY_LOCK_CLASS, "numbers": numbers},
        )
    else:
        conn.execute(update(StoreState).where(StoreState.key == "gc_epoch").values(value=StoreState.value))


@dataclass(frozen=True, slots=True)
class Shape:
    period_type: str
    sample_types: tuple[str, ...]  # "type/unit"
    default_sample_type: str


@dataclass(frozen=True, slots=True)
class ProfileMeta:
    """One raw profile, or one rollup standing for ``profiles`` of them (``width_s`` > 0)."""

    id: int
    series_id: int
    time_ns: int
    duration_ns: int
    period: int
    period_type: str
    sample_types: tuple[str, ...]
    default_sample_type: str
    samples: int
    totals: list[int]
    shape_id: int = 0
    profiles: int = 1
    width_s: int = 0
    max_totals: list[int] | None = None  # rollups: the largest single profile's totals

    def sample_index(self, name: str) -> int | None:
        """Position of the sample type ``name`` ("cpu" or "cpu/nanoseconds")."""
        for index, entry in enumerate(self.sample_types):
            type_name = entry.split("/", 1)[0]
            if name in (type_name, entry):
                return index
        return None

    def default_sample_index(self) -> int:
        if self.default_sample_type:
            found = self.sample_index(self.default_sample_type)
            if found is not None:
                return found
        return len(self.sample_types) - 1


class ProfileTable:
    """Profiles and their blobs; shapes are few and cached, so listing costs no join."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._shape_ids: dict[Shape, int] = {}
        self._shapes: dict[int, Shape] = {}
        self._lock = threading.Lock()

    def shape_id(self, shape: Shape) -> int:
        found = self._shape_ids.get(shape)
        if found is not None:
            return found
        key = hash64([shape.period_type, ",".join(shape.sample_types), shape.default_sample_type])
        row = {
            "hash": key,
            "period_type": shape.period_type,
            "sample_types": ",".join(shape.sample_types),
            "default_sample_type": shape.default_sample_type,
        }
        with self._lock, self._engine.begin() as conn:
            insert_ignoring_conflicts(conn, ProfileShape.__table__, [row])  # type: ignore[arg-type]
            shape_id = int(conn.execute(select(ProfileShape.id).where(ProfileShape.hash == key)).scalar_one())
        self._shape_ids[shape] = shape_id
        self._shapes[shape_id] = shape
        return shape_id

    def shapes(self) -> dict[int, Shape]:
        """Every stored shape (few: one per distinct set of sample types), read afresh."""
        self._load_shapes()
        return dict(self._shapes)

    def shape(self, shape_id: int) -> Shape:
        found = self._shapes.get(shape_id)
        if found is None:
            self._load_shapes()
            found = self._shapes[shape_id]
        return found

    def _load_shapes(self) -> None:
        with self._engine.connect() as conn:
            for sid, ptype, stypes, default in conn.execute(
                select(
                    ProfileShape.id,
                    ProfileShape.period_type,
                    ProfileShape.sample_types,
                    ProfileShape.default_sample_type,
                )
            ):
                shape = Shape(ptype, tuple(stypes.split(",")) if stypes else (), default)
                self._shapes[int(sid)] = shape
                self._shape_ids.setdefault(shape, int(sid))

    def insert(self, row: dict[str, Any], blob: bytes, also: Callable[[Connection], None] | None = None) -> int:
        """One transaction: a profile row never exists without its blob (``also`` joins the transaction)."""
        return self.insert_once(row, blob, also)[0]

    def insert_once(
        self, row: dict[str, Any], blob: bytes, also: Callable[[Connection], None] | None = None
    ) -> tuple[int, bool]:
        """Like :meth:`insert`, but a row whose ``idempotency_key`` is stored already is not written again.

        Returns (id, created). The unique index decides, inside the transaction,
        so two writers racing with one key (a retry overtaking its original,
        two replicas) still leave one row: the loser finds the winner's id.
        """
        with self._engine.begin() as conn:
            if also is not None:
                also(conn)
            return self.insert_rows(conn, [(row, blob)])[0]

    @staticmethod
    def insert_rows(conn: Connection, items: Sequence[tuple[dict[str, Any], bytes]]) -> list[tuple[int, bool]]:
        """Rows and their blobs inside the caller's transaction: (id, created) per item, in order.

        Rows without an idempotency key go in as one multi-row statement. A
        keyed row is looked up first, under a lock per key, so a key stored
        before (or twice in this batch) is told apart: its later copies answer
        the first one's id with ``created`` False. The lock, not a unique
        index, makes two writers racing with one key leave one row: on
        PostgreSQL a unique index would have to include the time (the tables
        are partitioned by it), and a retry may carry another time.
        """
        if len(items) == 1 and conn.dialect.name == "sqlite" and items[0][0].get("idempotency_key") is None:
            return [_insert_one(conn, *items[0])]
        results: list[tuple[int, bool] | None] = [None] * len(items)
        unkeyed = [i for i, (row, _) in enumerate(items) if row.get("idempotency_key") is None]
        if unkeyed:
            ids = conn.execute(_INSERT_ROWS, [items[i][0] for i in unkeyed]).scalars().all()
            for i, profile_id in zip(unkeyed, ids, strict=True):
                results[i] = (int(profile_id), True)
        keys = sorted({str(row["idempotency_key"]) for row, _ in items if row.get("idempotency_key") is not None})
        if keys:
            lock_keys(conn, keys)
            known: dict[str, int] = {}
            for part in chunks(keys, 500):
                query = select(ProfileRow.idempotency_key, ProfileRow.id).where(ProfileRow.idempotency_key.in_(part))
                known.update({str(key): int(pid) for key, pid in conn.execute(query)})
            for i, (row, _) in enumerate(items):
                key = row.get("idempotency_key")
                if key is None:
                    continue
                if key in known:
                    results[i] = (known[key], False)
                else:
                    known[key] = int(conn.execute(insert(ProfileRow).returning(ProfileRow.id), row).scalar_one())
                    results[i] = (known[key], True)
        blobs = [
            {"profile_id": result[0], "time_ns": row["time_ns"], "series_id": row["series_id"], "data": blob}
            for result, (row, blob) in zip(results, items, strict=True)
            if result is not None and result[1]
        ]
        if blobs:
            conn.execute(_INSERT_BLOBS, blobs)
        return [result for result in results if result is not None]

    def find_key(self, key: str) -> ProfileMeta | None:
        """The profile stored under an idempotency key (its digest), if any."""
        with self._engine.connect() as conn:
            row = conn.execute(select(*self.COLUMNS).where(ProfileRow.idempotency_key == key)).first()
        return self.meta(row) if row is not None else None

    def meta(self, row: Sequence[Any], profiles: int = 1, width_s: int = 0) -> ProfileMeta:
        """A meta from (id, series, shape, time, duration, period, samples, totals) columns."""
        pid, sid, shape_id, t, d, period, samples, totals = row
        shape = self.shape(int(shape_id))
        return ProfileMeta(
            int(pid),
            int(sid),
            int(t),
            int(d),
            int(period),
            shape.period_type,
            shape.sample_types,
            shape.default_sample_type,
            int(samples),
            [int(v) for v in totals],
            int(shape_id),
            profiles,
            width_s,
        )

    COLUMNS = (
        ProfileRow.id,
        ProfileRow.series_id,
        ProfileRow.shape_id,
        ProfileRow.time_ns,
        ProfileRow.duration_ns,
        ProfileRow.period,
        ProfileRow.samples,
        ProfileRow.totals,
    )

    def list(self, series_ids: Sequence[int], start_ns: int, end_ns: int, limit: int) -> list[ProfileMeta]:
        """Profiles of the series with ``start_ns <= time < end_ns``, oldest first, at most ``limit + 1``.

        One more than ``limit`` comes back when there are more, so callers can
        tell "exactly the limit" from "too many".
        """
        result: list[ProfileMeta] = []
        with self._engine.connect() as conn:
            for part in chunks(list(series_ids), 500):
                query = (
                    select(*self.COLUMNS)
                    .where(ProfileRow.series_id.in_(part), ProfileRow.time_ns >= start_ns, ProfileRow.time_ns < end_ns)
                    .order_by(ProfileRow.time_ns, ProfileRow.id)
                    .limit(limit - len(result) + 1)
                )
                result.extend(self.meta(row) for row in conn.execute(query))
                if len(result) > limit:
                    break
        result.sort(key=lambda m: (m.time_ns, m.id))
        return result

    def get(self, profile_id: int) -> ProfileMeta | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(*self.COLUMNS).where(ProfileRow.id == profile_id)).first()
        return self.meta(row) if row is not None else None

    def blobs(self, profile_ids: Sequence[int], times: tuple[int, int] | None = None) -> dict[int, bytes]:
        """Blobs by profile id; ``times`` (first, last ``time_ns`` of those profiles) lets PostgreSQL read
        only the partitions of that range rather than probe every one."""
        found: dict[int, bytes] = {}
        with self._engine.connect() as conn:
            for part in chunks(list(profile_ids), 500):
                query = select(ProfileBlob.profile_id, ProfileBlob.data).where(ProfileBlob.profile_id.in_(part))
                if times is not None:
                    query = query.where(ProfileBlob.time_ns >= times[0], ProfileBlob.time_ns <= times[1])
                found.update({int(pid): bytes(data) for pid, data in conn.execute(query)})
        return found


class TooManyRows(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} rows")
        self.limit = limit
