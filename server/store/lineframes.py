"""(function, line) pairs, each stored once as called and once as inlined: the frames of the line-granularity
stack tree.

``go tool pprof -lines`` keys a frame by function and line number; the store
gives every such pair an id, and stack tree 1 is built of those ids exactly
as tree 0 is built of function ids. Packing the pair into one integer instead
would pass the tree's 2**31 frame-id limit at once. A frame inlined into its
location's last line entry has an id of its own (``inlined`` 1): pprof marks
the rows whose calls were inlined, and that is known only at ingest (rows
merge both frames, as pprof's key has no such flag).

Frames are stored as append-only segments (``segments`` rows of their kind, columns of
function, line and the inlined flag, :mod:`server.store.columncodec`) with no unique index, and
dedup is answered from memory, under the rule of sample keys
(:mod:`server.store.samplekeys`): read every segment at first use, append new
pairs under the append lock after catching up and looking again, cache ids
only once committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, select

from server.store import columncodec, segmentcache
from server.store._keyindex import KeyIndex
from server.store.appends import LINE_FRAMES, Appends
from server.store.models import SegmentKind, StoreState
from server.store.segmentcache import SegmentCache, lookup_ids

IntArray = npt.NDArray[np.int64]
#: A frame packs into one int64 as ``function_id << 33 | inlined << 32 | line`` when the line fits 32 bits
#: and the function 30.
_LINE_BITS = 32
_LINE_MASK = (1 << _LINE_BITS) - 1
_FUNCTION_LIMIT = 1 << 30
Frame = tuple[int, int, int]  # function id, line, inlined (0 or 1)
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
    inlined: IntArray  # 1: a location's line entry other than its last

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def take(self, which: npt.NDArray[Any]) -> FrameRows:
        return FrameRows(self.ids[which], self.functions[which], self.lines[which], self.inlined[which])


def encode(rows: FrameRows) -> bytes:
    return columncodec.encode(MAGIC, rows.ids, [rows.functions, rows.lines, rows.inlined])


def decode(data: bytes) -> FrameRows:
    ids, (functions, lines, inlined) = columncodec.decode(MAGIC, 3, data)
    return FrameRows(ids, functions, lines, inlined)


def segment_row(rows: FrameRows) -> dict[str, Any]:
    """The ``segments`` row holding ``rows`` (at least one)."""
    return segmentcache.segment_row(SegmentKind.LINE_FRAMES, rows.ids, encode(rows))


def concatenate(parts: Sequence[FrameRows]) -> FrameRows:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return FrameRows(empty, empty, empty, empty)
    return FrameRows(
        np.concatenate([p.ids for p in parts]),
        np.concatenate([p.functions for p in parts]),
        np.concatenate([p.lines for p in parts]),
        np.concatenate([p.inlined for p in parts]),
    )


def read_segments(conn: Connection, above: int = 0) -> list[FrameRows]:
    """The segments holding frames past ``above``, in id order."""
    return [decode(data) for data in segmentcache.read_data(conn, SegmentKind.LINE_FRAMES, above)]


def _packable(functions: IntArray, lines: IntArray) -> bool:
    return (
        int(lines.min()) >= 0
        and int(lines.max()) <= _LINE_MASK
        and int(functions.min()) >= 0
        and int(functions.max()) < _FUNCTION_LIMIT
    )


def _packed(functions: IntArray, lines: IntArray, inlined: IntArray) -> IntArray:
    packed: IntArray = (
        (functions.astype(np.int64) << (_LINE_BITS + 1))
        | (inlined.astype(np.int64) << _LINE_BITS)
        | lines.astype(np.int64)
    )
    return packed


def _fits(functions: IntArray, lines: IntArray) -> npt.NDArray[np.bool_]:
    fits: npt.NDArray[np.bool_] = (
        (lines >= 0) & (lines <= _LINE_MASK) & (functions >= 0) & (functions < _FUNCTION_LIMIT)
    )
    return fits


class LineFrameTable(SegmentCache[FrameRows]):
    """The process's copy of ``line_frame_segments``: ids by frame, and frames by id for queries.

    Frames are looked up as one packed integer each (function id, inlined flag and line side by side) in
    a hash table (:class:`~server.store._keyindex.KeyIndex`): one C call a profile instead of a Python
    tuple per frame. Frames that do not pack (a line past 2**32 or below 0) go through a dictionary.
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._index = KeyIndex()
        self._unpacked: dict[Frame, int] = {}
        self.function = np.zeros(1024, dtype=np.int64)
        self.line = np.zeros(1024, dtype=np.int64)
        self.inlined_flag = np.zeros(1024, dtype=np.int64)
        self.known = np.zeros(1024, dtype=bool)

    def ids(
        self, functions: IntArray, lines: IntArray, inlined: IntArray | None = None, appends: Appends | None = None
    ) -> IntArray:
        """The id of every ``(functions[i], lines[i], inlined[i])`` (``inlined``: 1 for a frame inlined into
        its location's last line entry; none: 0 for all), appending the frames never stored before: in
        ``appends`` (their ids are handed out, and cached once it commits), or in a transaction of their own.

        Distinct frames are looked up once (a profile repeats few of them many times); after an append, only
        the frames that were missing are looked up again.
        """
        if functions.size == 0:
            return np.zeros(0, dtype=np.int64)
        flags = np.zeros(functions.shape[0], dtype=np.int64) if inlined is None else (inlined != 0).astype(np.int64)
        if not _packable(functions, lines):
            return self._ids_unpacked(functions, lines, flags, appends)
        keys, inverse = np.unique(_packed(functions, lines, flags), return_inverse=True)
        with self._lock:  # the index's arrays change in several steps: never read them mid-insert
            self._ensure_loaded()
            found = lookup_ids(self._index, keys)
            missing = found < 0
            if bool(missing.any()):
                wanted = keys[missing]
                rows = self._store(wanted >> (_LINE_BITS + 1), wanted & _LINE_MASK, (wanted >> _LINE_BITS) & 1, appends)
                found[missing] = lookup_ids(self._index, wanted)
                if rows is not None:  # this transaction's frames, not in the index before it commits
                    at = np.searchsorted(keys, _packed(rows.functions, rows.lines, rows.inlined))
                    found[at] = rows.ids
        ids: IntArray = found[inverse.reshape(-1)]
        return ids

    def _ids_unpacked(
        self, functions: IntArray, lines: IntArray, inlined: IntArray, appends: Appends | None
    ) -> IntArray:
        """The rare path: some frame does not pack into one integer."""
        frames, inverse = np.unique(np.stack([functions, lines, inlined], axis=1), axis=0, return_inverse=True)
        with self._lock:
            self._ensure_loaded()
            known = self._known(frames[:, 0], frames[:, 1], frames[:, 2])
            if bool((known < 0).any()):
                missing = known < 0
                rows = self._store(frames[missing, 0], frames[missing, 1], frames[missing, 2], appends)
                known = self._known(frames[:, 0], frames[:, 1], frames[:, 2])
                if rows is not None:  # this transaction's frames, not in the indexes before it commits
                    new = dict(
                        zip(
                            map(tuple, np.stack([rows.functions, rows.lines, rows.inlined], axis=1).tolist()),
                            rows.ids.tolist(),
                            strict=True,
                        )
                    )
                    for at in np.flatnonzero(known < 0).tolist():
                        known[at] = new[(int(frames[at, 0]), int(frames[at, 1]), int(frames[at, 2]))]
        ids: IntArray = known[inverse.reshape(-1)]
        return ids

    def _known(self, functions: IntArray, lines: IntArray, inlined: IntArray) -> IntArray:
        """The id of every frame, -1 for those this process has not loaded."""
        found = np.full(functions.shape[0], -1, dtype=np.int64)
        fits = _fits(functions, lines)
        if bool(fits.any()):
            found[fits] = lookup_ids(self._index, _packed(functions[fits], lines[fits], inlined[fits]))
        for at in np.flatnonzero(~fits).tolist():
            found[at] = self._unpacked.get((int(functions[at]), int(lines[at]), int(inlined[at])), -1)
        return found

    def _store(
        self, functions: IntArray, lines: IntArray, inlined: IntArray, appends: Appends | None
    ) -> FrameRows | None:
        """Append distinct frames none of which this process has loaded, in ``appends`` (or a transaction of
        their own); cache their ids once committed. Returns the rows appended, if any: until ``appends``
        commits, the caller finds their ids only there."""
        if appends is None:
            with Appends(self._engine) as own:
                self._store(functions, lines, inlined, own)
            return None
        conn = appends.segments(self)
        # Another writer appended since (the newest segment is past this process's): only what is still missing.
        if appends.appended_past(LINE_FRAMES, self._high) and self._catch_up(conn):
            missing = self._known(functions, lines, inlined) < 0
            functions, lines, inlined = functions[missing], lines[missing], inlined[missing]
        if not functions.size:
            return None
        order = np.lexsort((inlined, lines, functions))
        ids = self._high + 1 + np.arange(functions.shape[0], dtype=np.int64)
        rows = FrameRows(ids, functions[order], lines[order], inlined[order])
        appends.add_segment(segment_row(rows))
        # Cached only once committed: an id from a rolled-back segment must never be handed out.
        appends.after_commit(lambda: self._committed(rows))
        return rows

    def _read(self, conn: Connection, above: int) -> list[FrameRows]:
        return read_segments(conn, above)

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
            self.inlined_flag = np.concatenate([self.inlined_flag, np.zeros(grow, dtype=np.int64)])
            self.known = np.concatenate([self.known, np.zeros(grow, dtype=bool)])
        self.function[rows.ids] = rows.functions
        self.line[rows.ids] = rows.lines
        self.inlined_flag[rows.ids] = rows.inlined
        self.known[rows.ids] = True
        fits = _fits(rows.functions, rows.lines)
        # replace: the rule of sample keys' hashes (SampleKeyTable._add), a frame met again under a newer id.
        self._index.add(
            _packed(rows.functions[fits], rows.lines[fits], rows.inlined[fits]), rows.ids[fits], replace=True
        )
        for frame_id, function_id, line, flag in zip(
            rows.ids[~fits].tolist(),
            rows.functions[~fits].tolist(),
            rows.lines[~fits].tolist(),
            rows.inlined[~fits].tolist(),
            strict=True,
        ):
            self._unpacked[(function_id, line, flag)] = frame_id
        self._high = max(self._high, int(rows.ids[-1]))

    def _loaded_ids(self, ids: Iterable[int]) -> IntArray:
        """``ids`` (sorted, distinct) that are stored, reading the segments other processes appended."""
        wanted = np.array(sorted(set(ids)), dtype=np.int64)
        if wanted.size == 0:
            return wanted
        with self._lock:
            if not self._loaded or int(wanted[-1]) > self._high:
                with self._engine.connect() as conn:
                    self._catch_up(conn)
            wanted = wanted[(wanted >= 0) & (wanted < self.known.shape[0])]
            found: IntArray = wanted[self.known[wanted]]
            return found

    def pairs(self, ids: Iterable[int]) -> dict[int, tuple[int, int]]:
        """``(function id, line)`` of every id, reading the segments other processes appended."""
        wanted = self._loaded_ids(ids)
        return dict(
            zip(
                wanted.tolist(),
                zip(self.function[wanted].tolist(), self.line[wanted].tolist(), strict=True),
                strict=True,
            )
        )

    def inlined(self, ids: Iterable[int]) -> set[int]:
        """Which of ``ids`` are inlined frames."""
        wanted = self._loaded_ids(ids)
        return set(wanted[self.inlined_flag[wanted] != 0].tolist())


#: ``store_state`` key: profiles stored before this time (ns) may lack line data (see migration 0015).
SINCE = "line_data_since_ns"


def line_data_since_ns(engine: Engine) -> int:
    """Just past the newest profile stored before line data was kept (0: every profile has it)."""
    with engine.connect() as conn:
        return int(conn.execute(select(StoreState.value).where(StoreState.key == SINCE)).scalar() or 0)
