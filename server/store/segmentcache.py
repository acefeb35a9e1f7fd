"""A process's copy of one append-only segment table, and the rule that keeps it true.

Sample keys, line vectors and functions are stored as segments with no unique
index; each process reads every segment at first use and answers dedup from
memory. What keeps the copy true is the same for all three, so it lives here
once:

- *catch up*: read the segments starting past the highest id loaded, in id
  order (a writer does so under the table's append lock before it appends,
  so it sees what other writers appended);
- *commit*: a segment this process appended enters the copy only once its
  transaction has committed, and only if a catch-up has not read it already.

Each table says how its segments are read and how decoded rows enter its
maps (:meth:`SegmentCache._read`, :meth:`SegmentCache._add`).

Every kind's segments are rows of the one ``segments`` table
(:class:`~server.store.models.SegmentRow`); :func:`read_data` and
:func:`segment_row` are how each kind reads and writes its rows there.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, bindparam, insert, select

from server.store._keyindex import KeyIndex
from server.store.cachemarks import CacheMarks
from server.store.models import SegmentKind, SegmentRow


class _Rows(Protocol):
    """Decoded rows of one segment, ids in increasing order."""

    @property
    def ids(self) -> npt.NDArray[np.int64]: ...


Rows = TypeVar("Rows", bound=_Rows)


# Built once: every profile with new rows runs them, and building a statement costs more than running it
# (~100 us against ~20 on SQLite).
_READ = (
    select(SegmentRow.data)
    .where(SegmentRow.kind == bindparam("kind"), SegmentRow.first_id > bindparam("above"))
    .order_by(SegmentRow.first_id)
)
INSERT = insert(SegmentRow)


def read_data(conn: Connection, kind: SegmentKind, above: int) -> list[bytes]:
    """The bytes of ``kind``'s segments holding ids past ``above``, in id order."""
    return [bytes(data) for data in conn.execute(_READ, {"kind": int(kind), "above": above}).scalars()]


def segment_row(kind: SegmentKind, ids: npt.NDArray[np.int64], data: bytes) -> dict[str, Any]:
    """The ``segments`` row of ``kind`` holding rows ``ids`` (increasing, at least one) as ``data``."""
    return span_row(kind, int(ids[0]), int(ids[-1]), len(ids), data)


def span_row(kind: SegmentKind, first: int, last: int, items: int, data: bytes) -> dict[str, Any]:
    """The ``segments`` row of ``kind`` holding ``items`` rows with ids from ``first`` to ``last`` as ``data``."""
    return {"kind": int(kind), "first_id": first, "last_id": last, "items": items, "data": data}


def lookup_ids(index: KeyIndex, keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The id of every key in a table's key index (-1: none), as a writable array of the caller's own (the
    index answers bytes, which numpy can only view read-only)."""
    found: npt.NDArray[np.int64] = np.frombuffer(
        index.lookup(np.ascontiguousarray(keys, dtype=np.int64)), dtype=np.int64
    ).copy()
    return found


class SegmentCache(ABC, Generic[Rows]):
    """The loaded high-water mark of a segment table's copy, and its catch-up and commit steps."""

    #: Whether the table's rows name stack nodes (sample keys do): a catch-up then refuses rows of another node
    #: generation than the caches' (:mod:`server.store.cachemarks`).
    NODE_IDS = False

    def __init__(self, engine: Engine, marks: CacheMarks | None = None) -> None:
        self._engine = engine
        self._marks = marks  # what the set of caches this table belongs to was filled under (None: on its own)
        self._lock = threading.RLock()
        self._high = 0  # every segment whose ids are at most this is loaded
        self._loaded = False

    @abstractmethod
    def _read(self, conn: Connection, above: int) -> list[Rows]:
        """The table's segments holding ids past ``above``, decoded, in id order."""

    @abstractmethod
    def _add(self, rows: Rows) -> None:
        """Rows (in increasing id order, all above those loaded) into the table's maps; moves ``_high``."""

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            with self._engine.connect() as conn:
                self._catch_up(conn)

    def _catch_up(self, conn: Connection, *, guarded: bool = False) -> bool:
        """Read the segments appended past what this process has loaded; whether there were any.

        ``guarded``: under the append locks of a transaction that checked the caches' GC epoch
        (:attr:`Appends.guarded <server.store.appends.Appends.guarded>`): no collection, so no renumbering,
        since the caches were filled, and nothing to note or check."""
        if self._marks is None or guarded:
            parts = self._read(conn, self._high)
        else:
            parts = self._marks.read(conn, lambda: self._read(conn, self._high), nodes=self.NODE_IDS)
        self._loaded = True
        for part in parts:
            self._add(part)
        return bool(parts)

    def _committed(self, rows: Rows) -> None:
        """Rows this process appended have committed: into the copy, unless a query of another thread read
        them from the database in the meantime (they are loaded already)."""
        with self._lock:
            if int(rows.ids[0]) > self._high:
                self._add(rows)
