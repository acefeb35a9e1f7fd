"""(function, line) pairs, each stored once: the frames of the line-granularity stack tree.

``go tool pprof -lines`` keys a frame by function and line number; the store
gives every such pair an id, and stack tree 1 is built of those ids exactly
as tree 0 is built of function ids. Packing the pair into one integer instead
would pass the tree's 2**31 frame-id limit at once.

Pairs are stored as append-only segments (``line_frame_segments``, columns of
function and line, :mod:`server.store.columncodec`) with no unique index, and
dedup is answered from memory, under the rule of sample keys
(:mod:`server.store.samplekeys`): read every segment at first use, append new
pairs under the append lock after catching up and looking again, cache ids
only once committed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, insert, select

from server.store import columncodec
from server.store.appends import LINE_FRAMES, lock_appends
from server.store.models import LineFrameSegment, StoreState
from server.store.stacks import PairIndex

IntArray = npt.NDArray[np.int64]
#: A pair packs into one int64 as ``function_id << 32 | line`` when the line fits 32 bits and the function 31.
_LINE_BITS = 32
_LINE_MASK = (1 << _LINE_BITS) - 1
_FUNCTION_LIMIT = 1 << 31
#: A line-frame segment's magic bytes (:mod:`server.store.columncodec`).
MAGIC = b"LF"
#: Frames a segment holds at most when a whole store is written at once (migration 0018).
SEGMENT_FRAMES = 65_536


@dataclass(slots=True)
class FrameRows:
    """Line frames in increasing id order."""

    ids: IntArray
    functions: IntArray
    lines: IntArray

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def take(self, which: npt.NDArray[Any]) -> FrameRows:
        return FrameRows(self.ids[which], self.functions[which], self.lines[which])


def encode(rows: FrameRows) -> bytes:
    return columncodec.encode(MAGIC, rows.ids, [rows.functions, rows.lines])


def decode(data: bytes) -> FrameRows:
    ids, (functions, lines) = columncodec.decode(MAGIC, 2, data)
    return FrameRows(ids, functions, lines)


def segment_row(rows: FrameRows) -> dict[str, Any]:
    """The ``line_frame_segments`` row holding ``rows`` (at least one)."""
    return {"first_frame": int(rows.ids[0]), "last_frame": int(rows.ids[-1]), "frames": len(rows), "data": encode(rows)}


def concatenate(parts: Sequence[FrameRows]) -> FrameRows:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return FrameRows(empty, empty, empty)
    return FrameRows(
        np.concatenate([p.ids for p in parts]),
        np.concatenate([p.functions for p in parts]),
        np.concatenate([p.lines for p in parts]),
    )


def read_segments(conn: Connection, above: int = 0) -> list[FrameRows]:
    """The segments holding frames past ``above``, in id order."""
    rows = conn.execute(
        select(LineFrameSegment.data).where(LineFrameSegment.first_frame > above).order_by(LineFrameSegment.first_frame)
    ).scalars()
    return [decode(bytes(data)) for data in rows]


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


def _fits(functions: IntArray, lines: IntArray) -> npt.NDArray[np.bool_]:
    fits: npt.NDArray[np.bool_] = (
        (lines >= 0) & (lines <= _LINE_MASK) & (functions >= 0) & (functions < _FUNCTION_LIMIT)
    )
    return fits


class LineFrameTable:
    """The process's copy of ``line_frame_segments``: ids by pair, and pairs by id for queries.

    Pairs are looked up as one packed integer each (function id and line side by side) in a sorted
    index (:class:`~server.store.stacks.PairIndex`): one ``searchsorted`` a profile instead of a Python
    tuple per pair. Pairs that do not pack (a line past 2**32 or below 0) go through a dictionary.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._index = PairIndex()
        self._unpacked: dict[tuple[int, int], int] = {}
        self._lock = threading.RLock()
        self._high = 0  # every segment whose frames are at most this is loaded
        self._loaded = False
        self.function = np.zeros(1024, dtype=np.int64)
        self.line = np.zeros(1024, dtype=np.int64)
        self.known = np.zeros(1024, dtype=bool)

    def ids(self, functions: IntArray, lines: IntArray) -> IntArray:
        """The id of every ``(functions[i], lines[i])``, appending the pairs never stored before.

        Distinct pairs are looked up once (a profile repeats few of them many times).
        """
        if functions.size == 0:
            return np.zeros(0, dtype=np.int64)
        if not _packable(functions, lines):
            return self._ids_unpacked(functions, lines)
        keys, inverse = np.unique(_packed(functions, lines), return_inverse=True)
        with self._lock:  # the index's arrays change in several steps: never read them mid-insert
            self._ensure_loaded()
            found = self._index.lookup(keys)
            if bool((found < 0).any()):
                wanted = keys[found < 0]
                self._store(wanted >> _LINE_BITS, wanted & _LINE_MASK)
                found = self._index.lookup(keys)
        ids: IntArray = found[inverse.reshape(-1)]
        return ids

    def _ids_unpacked(self, functions: IntArray, lines: IntArray) -> IntArray:
        """The rare path: some pair does not pack into one integer."""
        pairs, inverse = np.unique(np.stack([functions, lines], axis=1), axis=0, return_inverse=True)
        with self._lock:
            self._ensure_loaded()
            known = self._known(pairs[:, 0], pairs[:, 1])
            if bool((known < 0).any()):
                self._store(pairs[known < 0, 0], pairs[known < 0, 1])
                known = self._known(pairs[:, 0], pairs[:, 1])
        ids: IntArray = known[inverse.reshape(-1)]
        return ids

    def _known(self, functions: IntArray, lines: IntArray) -> IntArray:
        """The id of every pair, -1 for those this process has not loaded."""
        found = np.full(functions.shape[0], -1, dtype=np.int64)
        fits = _fits(functions, lines)
        if bool(fits.any()):
            found[fits] = self._index.lookup(_packed(functions[fits], lines[fits]))
        for at in np.flatnonzero(~fits).tolist():
            found[at] = self._unpacked.get((int(functions[at]), int(lines[at])), -1)
        return found

    def _store(self, functions: IntArray, lines: IntArray) -> None:
        """Append distinct pairs none of which this process has loaded; cache their ids once committed."""
        rows: FrameRows | None = None
        with self._engine.begin() as conn:
            lock_appends(conn, LINE_FRAMES)
            if self._catch_up(conn):  # another writer appended since: only what is still missing
                missing = self._known(functions, lines) < 0
                functions, lines = functions[missing], lines[missing]
            if functions.size:
                order = np.lexsort((lines, functions))
                ids = self._high + 1 + np.arange(functions.shape[0], dtype=np.int64)
                rows = FrameRows(ids, functions[order], lines[order])
                conn.execute(insert(LineFrameSegment).values(**segment_row(rows)))
        # Cached only once committed: an id from a rolled-back segment must never be handed out.
        if rows is not None:
            self._add(rows)

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            with self._engine.connect() as conn:
                self._catch_up(conn)

    def _catch_up(self, conn: Connection) -> bool:
        """Read the segments appended past what this process has loaded; whether there were any."""
        parts = read_segments(conn, self._high)
        self._loaded = True
        for part in parts:
            self._add(part)
        return bool(parts)

    def _add(self, rows: FrameRows) -> None:
        """Frames (in increasing id order, all above those loaded) into the columns and the indexes."""
        if len(rows) == 0:
            return
        size = int(rows.ids[-1]) + 1
        if size > self.function.shape[0]:
            size = max(size, self.function.shape[0] * 2)
            grow = size - self.function.shape[0]
            self.function = np.concatenate([self.function, np.zeros(grow, dtype=np.int64)])
            self.line = np.concatenate([self.line, np.zeros(grow, dtype=np.int64)])
            self.known = np.concatenate([self.known, np.zeros(grow, dtype=bool)])
        self.function[rows.ids] = rows.functions
        self.line[rows.ids] = rows.lines
        self.known[rows.ids] = True
        fits = _fits(rows.functions, rows.lines)
        self._index.add(_packed(rows.functions[fits], rows.lines[fits]), rows.ids[fits])
        for frame_id, function_id, line in zip(
            rows.ids[~fits].tolist(), rows.functions[~fits].tolist(), rows.lines[~fits].tolist(), strict=True
        ):
            self._unpacked[(function_id, line)] = frame_id
        self._high = max(self._high, int(rows.ids[-1]))

    def pairs(self, ids: Iterable[int]) -> dict[int, tuple[int, int]]:
        """``(function id, line)`` of every id, reading the segments other processes appended."""
        wanted = np.array(sorted(set(ids)), dtype=np.int64)
        if wanted.size == 0:
            return {}
        with self._lock:
            if not self._loaded or int(wanted[-1]) > self._high:
                with self._engine.connect() as conn:
                    self._catch_up(conn)
            wanted = wanted[(wanted >= 0) & (wanted < self.known.shape[0])]
            wanted = wanted[self.known[wanted]]
            return dict(
                zip(
                    wanted.tolist(),
                    zip(self.function[wanted].tolist(), self.line[wanted].tolist(), strict=True),
                    strict=True,
                )
            )


#: ``store_state`` key: profiles stored before this time (ns) may lack line data (see migration 0015).
SINCE = "line_data_since_ns"


def line_data_since_ns(engine: Engine) -> int:
    """Just past the newest profile stored before line data was kept (0: every profile has it)."""
    with engine.connect() as conn:
        return int(conn.execute(select(StoreState.value).where(StoreState.key == SINCE)).scalar() or 0)
