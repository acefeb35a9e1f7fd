"""(function, line) pairs, each stored once: the frames of the line-granularity stack tree.

``go tool pprof -lines`` keys a frame by function and line number; the store
gives every such pair an id (``line_frames``), and stack tree 1 is built of
those ids exactly as tree 0 is built of function ids. Packing the pair into
one integer instead would pass the tree's 2**31 frame-id limit at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, select

from server.store.database import chunks, insert_ignoring_conflicts
from server.store.models import LineFrame, StoreState

IntArray = npt.NDArray[np.int64]


class LineFrameTable:
    """A write-through cache of ``line_frames``: ids by pair, and pairs by id for queries."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._ids: dict[tuple[int, int], int] = {}
        self._pairs: dict[int, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def ids(self, functions: IntArray, lines: IntArray) -> IntArray:
        """The id of every ``(functions[i], lines[i])``, inserting the pairs never seen before.

        Distinct pairs are looked up once (a profile repeats few of them many times).
        """
        if functions.size == 0:
            return np.zeros(0, dtype=np.int64)
        pairs, inverse = np.unique(np.stack([functions, lines], axis=1), axis=0, return_inverse=True)
        keys = list(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist(), strict=True))
        missing = [key for key in keys if key not in self._ids]
        if missing:
            with self._lock:
                self._store(missing)
        found = np.array([self._ids[key] for key in keys], dtype=np.int64)
        return found[inverse.reshape(-1)]

    def _store(self, missing: list[tuple[int, int]]) -> None:
        wanted = {key for key in missing if key not in self._ids}
        if not wanted:
            return
        rows = [{"function_id": f, "line": line} for f, line in sorted(wanted)]
        found: list[tuple[int, int, int]] = []
        with self._engine.begin() as conn:
            insert_ignoring_conflicts(conn, LineFrame.__table__, rows)  # type: ignore[arg-type]
            functions = sorted({f for f, _ in wanted})
            for part in chunks(functions, 500):
                query = select(LineFrame.id, LineFrame.function_id, LineFrame.line).where(
                    LineFrame.function_id.in_(part)
                )
                found.extend((int(i), int(f), int(line)) for i, f, line in conn.execute(query))
        # Cached only once committed: an id from a rolled-back insert must never be handed out.
        for frame_id, function_id, line in found:
            self._ids[(function_id, line)] = frame_id
            self._pairs[frame_id] = (function_id, line)

    def pairs(self, ids: Iterable[int]) -> dict[int, tuple[int, int]]:
        """``(function id, line)`` of every id, loading those this process has not seen."""
        wanted = set(ids)
        unknown = sorted(i for i in wanted if i not in self._pairs)
        if unknown:
            with self._engine.connect() as conn:
                for part in chunks(unknown, 500):
                    query = select(LineFrame.id, LineFrame.function_id, LineFrame.line).where(LineFrame.id.in_(part))
                    for frame_id, function_id, line in conn.execute(query):
                        self._pairs[int(frame_id)] = (int(function_id), int(line))
        return {i: self._pairs[i] for i in wanted if i in self._pairs}


#: ``store_state`` key: profiles stored before this time (ns) may lack line data (see migration 0015).
SINCE = "line_data_since_ns"


def line_data_since_ns(engine: Engine) -> int:
    """Just past the newest profile stored before line data was kept (0: every profile has it)."""
    with engine.connect() as conn:
        return int(conn.execute(select(StoreState.value).where(StoreState.key == SINCE)).scalar() or 0)
