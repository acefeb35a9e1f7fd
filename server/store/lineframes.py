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

from server.store.database import chunks, insert_integers_returning
from server.store.models import LineFrame, StoreState
from server.store.stacks import PairIndex

IntArray = npt.NDArray[np.int64]
#: A pair packs into one int64 as ``function_id << 32 | line`` when the line fits 32 bits and the function 31.
_LINE_BITS = 32
_LINE_MASK = (1 << _LINE_BITS) - 1
_FUNCTION_LIMIT = 1 << 31
#: The unique key of ``line_frames``, as ``ON CONFLICT`` names it.
_UNIQUE = "function_id, line"


def _packable(functions: IntArray, lines: IntArray) -> bool:
    return (
        int(lines.min()) >= 0
        and int(lines.max()) <= _LINE_MASK
        and int(functions.min()) >= 0
        and int(functions.max()) < _FUNCTION_LIMIT
    )


def _packed(functions: IntArray, lines: IntArray) -> IntArray:
    packed: IntArray = (functions.astype(np.int64) << _LINE_BITS) | lines.astype(np.int64)
    return packed


class LineFrameTable:
    """A write-through cache of ``line_frames``: ids by pair, and pairs by id for queries.

    Pairs are looked up as one packed integer each (function id and line side by side) in a sorted
    index (:class:`~server.store.stacks.PairIndex`): one ``searchsorted`` a profile instead of a Python
    tuple per pair. Pairs that do not pack (a line past 2**32 or below 0) go through a dictionary.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._index = PairIndex()
        self._unpacked: dict[tuple[int, int], int] = {}
        self._pairs: dict[int, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def ids(self, functions: IntArray, lines: IntArray) -> IntArray:
        """The id of every ``(functions[i], lines[i])``, inserting the pairs never seen before.

        Distinct pairs are looked up once (a profile repeats few of them many times).
        """
        if functions.size == 0:
            return np.zeros(0, dtype=np.int64)
        if not _packable(functions, lines):
            return self._ids_unpacked(functions, lines)
        keys, inverse = np.unique(_packed(functions, lines), return_inverse=True)
        with self._lock:  # the index's arrays change in several steps: never read them mid-insert
            found = self._index.lookup(keys)
            if bool((found < 0).any()):
                wanted = keys[found < 0]
                self._store(list(zip((wanted >> _LINE_BITS).tolist(), (wanted & _LINE_MASK).tolist(), strict=True)))
                found = self._index.lookup(keys)
        ids: IntArray = found[inverse.reshape(-1)]
        return ids

    def _ids_unpacked(self, functions: IntArray, lines: IntArray) -> IntArray:
        """The rare path: some pair does not pack into one integer."""
        pairs, inverse = np.unique(np.stack([functions, lines], axis=1), axis=0, return_inverse=True)
        keys = list(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist(), strict=True))
        with self._lock:
            known = self._known(keys)
            missing = [key for key, frame_id in zip(keys, known, strict=True) if frame_id < 0]
            if missing:
                self._store(missing)
                known = self._known(keys)
        ids: IntArray = known[inverse.reshape(-1)]
        return ids

    def _known(self, keys: list[tuple[int, int]]) -> IntArray:
        """The id of every pair, -1 for those this process has not stored or read."""
        found = np.full(len(keys), -1, dtype=np.int64)
        packed_at: list[int] = []
        packed: list[int] = []
        for at, (function_id, line) in enumerate(keys):
            if 0 <= line <= _LINE_MASK and 0 <= function_id < _FUNCTION_LIMIT:
                packed_at.append(at)
                packed.append((function_id << _LINE_BITS) | line)
            else:
                found[at] = self._unpacked.get((function_id, line), -1)
        if packed:
            found[packed_at] = self._index.lookup(np.array(packed, dtype=np.int64))
        return found

    def _store(self, missing: list[tuple[int, int]]) -> None:
        """Insert pairs (under ``_lock``, none of them known here) and cache the ids, once committed."""
        if not missing:
            return
        rows = sorted(set(missing))
        found: list[tuple[int, int, int]] = []
        with self._engine.begin() as conn:
            inserted = insert_integers_returning(conn, LineFrame.__tablename__, ("function_id", "line"), rows, _UNIQUE)
            found.extend((i, f, line) for i, f, line in inserted.tolist())
            # Stored by another writer a moment ago (the unique pair decided): read their ids.
            raced = set(rows) - {(f, line) for _, f, line in found}
            for part in chunks(sorted({f for f, _ in raced}), 500):
                query = select(LineFrame.id, LineFrame.function_id, LineFrame.line).where(
                    LineFrame.function_id.in_(part)
                )
                found.extend((int(i), int(f), int(line)) for i, f, line in conn.execute(query) if (f, line) in raced)
        # Cached only once committed: an id from a rolled-back insert must never be handed out.
        packed_ids: list[int] = []
        packed_keys: list[int] = []
        for frame_id, function_id, line in found:
            self._pairs[frame_id] = (function_id, line)
            if 0 <= line <= _LINE_MASK and 0 <= function_id < _FUNCTION_LIMIT:
                packed_ids.append(frame_id)
                packed_keys.append((function_id << _LINE_BITS) | line)
            else:
                self._unpacked[(function_id, line)] = frame_id
        if packed_ids:
            keys, ids = np.array(packed_keys, dtype=np.int64), np.array(packed_ids, dtype=np.int64)
            fresh = self._index.lookup(keys) < 0  # the select also returns the functions' known lines
            self._index.add(keys[fresh], ids[fresh])

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
