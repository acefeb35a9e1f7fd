"""(function, line) pairs, each stored once as called and once as inlined: the frames of the line-granularity
stack tree.

``go tool pprof -lines`` keys a frame by function and line number; the store
gives every such pair an id (``line_frames``), and stack tree 1 is built of
those ids exactly as tree 0 is built of function ids. Packing the pair into
one integer instead would pass the tree's 2**31 frame-id limit at once. A
frame inlined into its location's last line entry has an id of its own
(``inlined`` 1): pprof marks the rows whose calls were inlined, and that is
known only here (rows merge both frames, as pprof's key has no such flag).
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
#: A frame packs into one int64 as ``function_id << 33 | inlined << 32 | line`` when the line fits 32 bits
#: and the function 30.
_LINE_BITS = 32
_LINE_MASK = (1 << _LINE_BITS) - 1
_FUNCTION_LIMIT = 1 << 30
#: The unique key of ``line_frames``, as ``ON CONFLICT`` names it.
_UNIQUE = "function_id, line, inlined"

Frame = tuple[int, int, int]  # function id, line, inlined (0 or 1)


def _packable(functions: IntArray, lines: IntArray) -> bool:
    return (
        int(lines.min()) >= 0
        and int(lines.max()) <= _LINE_MASK
        and int(functions.min()) >= 0
        and int(functions.max()) < _FUNCTION_LIMIT
    )


def _packed(functions: IntArray, lines: IntArray, inlined: IntArray) -> IntArray:
    packed: IntArray = (
        (functions.astype(np.int64) << (_LINE_BITS + 1)) | (inlined.astype(np.int64) << _LINE_BITS) | lines
    )
    return packed


def _pack(frame: Frame) -> int | None:
    function_id, line, inlined = frame
    if 0 <= line <= _LINE_MASK and 0 <= function_id < _FUNCTION_LIMIT:
        return (function_id << (_LINE_BITS + 1)) | (inlined << _LINE_BITS) | line
    return None


def _unpack(key: int) -> Frame:
    return key >> (_LINE_BITS + 1), key & _LINE_MASK, (key >> _LINE_BITS) & 1


class LineFrameTable:
    """A write-through cache of ``line_frames``: ids by pair, and pairs by id for queries.

    Pairs are looked up as one packed integer each (function id and line side by side) in a sorted
    index (:class:`~server.store.stacks.PairIndex`): one ``searchsorted`` a profile instead of a Python
    tuple per pair. Pairs that do not pack (a line past 2**32 or below 0) go through a dictionary.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._index = PairIndex()
        self._unpacked: dict[Frame, int] = {}
        self._pairs: dict[int, tuple[int, int]] = {}
        self._inlined: set[int] = set()  # ids of inlined frames, of those in ``_pairs``
        self._lock = threading.Lock()

    def ids(self, functions: IntArray, lines: IntArray, inlined: IntArray | None = None) -> IntArray:
        """The id of every ``(functions[i], lines[i], inlined[i])`` (``inlined``: 1 for a frame inlined into
        its location's last line entry; none: 0 for all), inserting the frames never seen before.

        Distinct frames are looked up once (a profile repeats few of them many times).
        """
        if functions.size == 0:
            return np.zeros(0, dtype=np.int64)
        flags = np.zeros(functions.shape[0], dtype=np.int64) if inlined is None else inlined.astype(np.int64)
        if not _packable(functions, lines):
            return self._ids_unpacked(functions, lines, flags)
        keys, inverse = np.unique(_packed(functions, lines, flags), return_inverse=True)
        with self._lock:  # the index's arrays change in several steps: never read them mid-insert
            found = self._index.lookup(keys)
            if bool((found < 0).any()):
                self._store([_unpack(key) for key in keys[found < 0].tolist()])
                found = self._index.lookup(keys)
        ids: IntArray = found[inverse.reshape(-1)]
        return ids

    def _ids_unpacked(self, functions: IntArray, lines: IntArray, inlined: IntArray) -> IntArray:
        """The rare path: some frame does not pack into one integer."""
        frames, inverse = np.unique(np.stack([functions, lines, inlined], axis=1), axis=0, return_inverse=True)
        keys: list[Frame] = [(f, line, i) for f, line, i in frames.tolist()]
        with self._lock:
            known = self._known(keys)
            missing = [key for key, frame_id in zip(keys, known, strict=True) if frame_id < 0]
            if missing:
                self._store(missing)
                known = self._known(keys)
        ids: IntArray = known[inverse.reshape(-1)]
        return ids

    def _known(self, keys: list[Frame]) -> IntArray:
        """The id of every frame, -1 for those this process has not stored or read."""
        found = np.full(len(keys), -1, dtype=np.int64)
        packed_at: list[int] = []
        packed: list[int] = []
        for at, frame in enumerate(keys):
            key = _pack(frame)
            if key is not None:
                packed_at.append(at)
                packed.append(key)
            else:
                found[at] = self._unpacked.get(frame, -1)
        if packed:
            found[packed_at] = self._index.lookup(np.array(packed, dtype=np.int64))
        return found

    def _store(self, missing: list[Frame]) -> None:
        """Insert frames (under ``_lock``, none of them known here) and cache the ids, once committed."""
        if not missing:
            return
        rows = sorted(set(missing))
        columns = ("function_id", "line", "inlined")
        found: list[tuple[int, Frame]] = []
        with self._engine.begin() as conn:
            inserted = insert_integers_returning(conn, LineFrame.__tablename__, columns, rows, _UNIQUE)
            found.extend((i, (f, line, flag)) for i, f, line, flag in inserted.tolist())
            # Stored by another writer a moment ago (the unique frame decided): read their ids.
            raced = set(rows) - {frame for _, frame in found}
            for part in chunks(sorted({f for f, _, _ in raced}), 500):
                query = select(LineFrame.id, LineFrame.function_id, LineFrame.line, LineFrame.inlined).where(
                    LineFrame.function_id.in_(part)
                )
                for i, f, line, flag in conn.execute(query):
                    if (f, line, flag) in raced:
                        found.append((int(i), (int(f), int(line), int(flag))))
        # Cached only once committed: an id from a rolled-back insert must never be handed out.
        packed_ids: list[int] = []
        packed_keys: list[int] = []
        for frame_id, frame in found:
            self._remember(frame_id, frame)
            key = _pack(frame)
            if key is not None:
                packed_ids.append(frame_id)
                packed_keys.append(key)
            else:
                self._unpacked[frame] = frame_id
        if packed_ids:
            keys, ids = np.array(packed_keys, dtype=np.int64), np.array(packed_ids, dtype=np.int64)
            fresh = self._index.lookup(keys) < 0  # the select also returns the functions' known lines
            self._index.add(keys[fresh], ids[fresh])

    def _remember(self, frame_id: int, frame: Frame) -> None:
        function_id, line, inlined = frame
        self._pairs[frame_id] = (function_id, line)
        if inlined:
            self._inlined.add(frame_id)

    def pairs(self, ids: Iterable[int]) -> dict[int, tuple[int, int]]:
        """``(function id, line)`` of every id, loading those this process has not seen."""
        wanted = set(ids)
        unknown = sorted(i for i in wanted if i not in self._pairs)
        if unknown:
            columns = (LineFrame.id, LineFrame.function_id, LineFrame.line, LineFrame.inlined)
            with self._engine.connect() as conn:
                for part in chunks(unknown, 500):
                    for frame_id, function_id, line, inlined in conn.execute(
                        select(*columns).where(LineFrame.id.in_(part))
                    ):
                        self._remember(int(frame_id), (int(function_id), int(line), int(inlined)))
        return {i: self._pairs[i] for i in wanted if i in self._pairs}

    def inlined(self, ids: Iterable[int]) -> set[int]:
        """Which of ``ids`` are inlined frames (after :meth:`pairs` has loaded them)."""
        return self._inlined.intersection(ids)


#: ``store_state`` key: profiles stored before this time (ns) may lack line data (see migration 0015).
SINCE = "line_data_since_ns"


def line_data_since_ns(engine: Engine) -> int:
    """Just past the newest profile stored before line data was kept (0: every profile has it)."""
    with engine.connect() as conn:
        return int(conn.execute(select(StoreState.value).where(StoreState.key == SINCE)).scalar() or 0)
