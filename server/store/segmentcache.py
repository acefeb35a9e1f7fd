"""A process's copy of one append-only segment table, and the rule that keeps it true.

Sample keys, line frames and functions are stored as segments with no unique
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
"""

from __future__ import annotations

import threading
from typing import Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine


class _Rows(Protocol):
    """Decoded rows of one segment, ids in increasing order."""

    @property
    def ids(self) -> npt.NDArray[np.int64]: ...


Rows = TypeVar("Rows", bound=_Rows)


class SegmentCache(Generic[Rows]):
    """The loaded high-water mark of a segment table's copy, and its catch-up and commit steps."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.RLock()
        self._high = 0  # every segment whose ids are at most this is loaded
        self._loaded = False

    def _read(self, conn: Connection, above: int) -> list[Rows]:
        """The table's segments holding ids past ``above``, decoded, in id order."""
        raise NotImplementedError

    def _add(self, rows: Rows) -> None:
        """Rows (in increasing id order, all above those loaded) into the table's maps; moves ``_high``."""
        raise NotImplementedError

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            with self._engine.connect() as conn:
                self._catch_up(conn)

    def _catch_up(self, conn: Connection) -> bool:
        """Read the segments appended past what this process has loaded; whether there were any."""
        parts = self._read(conn, self._high)
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
