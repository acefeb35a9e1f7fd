"""The line numbers of every sample key's stack: one *line vector* a key, what line granularity is built from.

A key's stack of functions is its node in the function tree
(:mod:`server.store.stacks`). ``go tool pprof -lines`` also needs each
frame's line, and whether the frame was inlined into its location's last line
entry (pprof marks rows whose calls were all inlined). A key stores them as a
vector aligned with its node's path, leaf first: ``line << 1 | inlined`` a
frame. The key's identity already holds its lines (:mod:`server.pprof.identity`),
so a key has exactly one vector, written with the key.

Why vectors, not a second prefix tree of ``(function, line)`` frames (what
the store kept before): on a high-churn profile that tree gained as many
nodes as the function tree (~50,000 a profile), each walked, indexed, paged
in, compressed and kept in memory by every process, which was a third of
ingest's time and ~2 MB of memory a profile, for a view most queries never
ask for. A vector costs two bytes a frame at ingest. The tree is now built
in memory when a query asks for lines, from the vectors of the keys it
merges (:mod:`server.store.linestacks`).

Vectors are stored as append-only segments of their kind (``segments`` rows,
:class:`~server.store.models.SegmentKind`), numbered by vector ids of their
own: a key stored before line data was kept (migration 0015) gets its vector
when ingest sees it again, long after the key itself, so vectors cannot be
numbered by key id and stay appended in order. A later vector of a key
replaces an earlier one (two processes filling the same old key write the
same vector); garbage collection keeps the newest vector of each live key.
A process keeps the vectors it appends in their segment's bytes until a
line-granularity query asks for them: a churny profile's ~82,000 values were
copied into memory at every commit, for a view most processes never serve.

Layout: a 4-byte length, then the rows (vector id, key id, frame count) as a
segment of :mod:`server.store.columncodec` (magic ``LV``), then one byte
giving the values' width (1, 2, 4 or 8 bytes; 8 is signed) and their codec,
then the values, little-endian one after another, compressed. The codec is
raw deflate from ISA-L (``isal``) at its level 1 when the byte has
``DEFLATED`` set, else one zstd frame (level 1's fast strategy, a 128 KB
window: what segments were written with before, still read). A churny profile
writes ~82,000 values at once: zstd took 0.41 ms for 69 KB of them, ISA-L
0.30 ms for 80 KB (0.60-0.70 ms against 0.44-0.52 inside ingest, where the
caches are colder); as byte planes they compressed worse and slower (a
vector's lines repeat along other vectors' and the planes cut those runs
apart). On a churny store the vectors are as many bytes as the tree's segments (1.01 MB against
1.00 MB on the churn bench's store, 27.4 MB each on a day when every profile is new): a quarter
and over two fifths of what those stores hold. Coding them smaller needs a model of a frame's line from its
function and callee, which the vectors alone do not carry; the deflate here costs half of what
zstd's level 3 costs, for 28 % more bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, delete, select

from server.pprof.frames import narrowest
from server.store import columncodec, reserved, segmentcache
from server.store.appends import LINE_VECTORS, Appends, lock_appends
from server.store.cachemarks import CacheMarks
from server.store.models import SegmentKind, SegmentRow, StoreState
from server.store.segmentcache import SegmentCache
from server.store.stackcodec import CorruptSegment, deflate, inflate, unzstd

IntArray = npt.NDArray[np.int64]
#: A line-vector segment's magic bytes (its rows, :mod:`server.store.columncodec`).
MAGIC = b"LV"
_LENGTH = struct.Struct("<I")
_WIDTHS = (1, 2, 4, 8)
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1
_UINT16_MAX = (1 << 16) - 1
#: A key's ``start`` while its vector is stored (by this process, committed) but its values are still only in the
#: segment's bytes: read at the first query that needs them (:meth:`LineVectorTable.vectors`).
_UNREAD = -2
#: Set in the width byte when the values are raw deflate (else a zstd frame, as segments before it were written).
DEFLATED = 0x80
_LEVEL = 1


@dataclass(slots=True)
class VectorRows:
    """Vectors in increasing vector-id order: key ``keys[i]``'s is ``values[offsets[i]:offsets[i + 1]]``."""

    ids: IntArray
    keys: IntArray
    offsets: IntArray
    #: int64 as decoded; as :meth:`LineVectorTable.append` is given them (packed narrow) when appended here.
    values: npt.NDArray[np.integer[Any]]

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def lengths(self) -> IntArray:
        lengths: IntArray = np.diff(self.offsets)
        return lengths

    def take(self, which: npt.NDArray[Any]) -> VectorRows:
        """The rows ``which`` picks (a mask or increasing positions), their values with them."""
        if which.dtype == np.bool_:
            which = np.flatnonzero(which)
        lengths = self.lengths[which]
        offsets = np.zeros(which.shape[0] + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return VectorRows(self.ids[which], self.keys[which], offsets, self.values[ragged(self.offsets[which], lengths)])


def ragged(starts: IntArray, lengths: IntArray) -> IntArray:
    """The positions ``starts[i] .. starts[i] + lengths[i] - 1`` of every run, runs one after another."""
    total = int(lengths.sum()) if lengths.size else 0
    before = np.cumsum(lengths) - lengths  # where each run begins in the result
    positions: IntArray = np.arange(total, dtype=np.int64) + np.repeat(starts - before, lengths)
    return positions


def encode(rows: VectorRows) -> bytes:
    """The segment's bytes; ``ValueError`` for ids that do not increase or offsets that do not fit the values."""
    lengths = rows.lengths
    if rows.offsets.shape[0] != len(rows) + 1 or int(rows.offsets[0]) != 0 or bool((lengths < 0).any()):
        raise ValueError("line vector offsets must start at 0 and not decrease, one more than the rows")
    if int(rows.offsets[-1]) != rows.values.shape[0]:
        raise ValueError("line vector offsets must end at the number of values")
    head = columncodec.encode(MAGIC, rows.ids, [rows.keys, lengths])
    values = narrowest(rows.values)  # no copy for values packed so already (LineVectorTable.append's)
    return _LENGTH.pack(len(head)) + head + bytes([values.itemsize | DEFLATED]) + deflate(values.data, _LEVEL)


def decode(data: bytes) -> VectorRows:
    """The rows of a segment; :class:`CorruptSegment` naming what is wrong for bytes that are not one."""
    if len(data) < _LENGTH.size:
        raise CorruptSegment("line vector segment is shorter than its length prefix")
    (head_size,) = _LENGTH.unpack_from(data)
    start = _LENGTH.size + head_size
    if len(data) < start + 1:
        raise CorruptSegment("line vector segment is cut short before its values")
    ids, (keys, lengths) = columncodec.decode(MAGIC, 2, data[_LENGTH.size : start])
    if bool((lengths < 0).any()) or bool((keys < 1).any()):
        raise CorruptSegment("line vector segment has a negative frame count or a key id below 1")
    width, deflated = data[start] & ~DEFLATED, bool(data[start] & DEFLATED)
    if width not in _WIDTHS:
        raise CorruptSegment(f"line vector segment has values {width} bytes wide")
    count = int(lengths.sum()) if lengths.size else 0
    body = data[start + 1 :]
    what = "line vector segment values"
    raw = (
        inflate(body, count * width, what)
        if deflated
        else unzstd(
            body,
            count * width,
            what,
            "line vector segment holds {size} bytes of values; its rows say " + str(count * width),
        )
    )
    if len(raw) != count * width:
        raise CorruptSegment(f"line vector segment holds {len(raw)} bytes of values; its rows say {count * width}")
    values = np.frombuffer(raw, f"<u{width}" if width < 8 else "<i8", count)
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return VectorRows(ids, keys, offsets, values.astype(np.int64))


def segment_row(rows: VectorRows) -> dict[str, Any]:
    """The ``segments`` row holding ``rows`` (at least one)."""
    return segmentcache.segment_row(SegmentKind.LINE_VECTORS, rows.ids, encode(rows))


def concatenate(parts: Sequence[VectorRows]) -> VectorRows:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return VectorRows(empty, empty, np.zeros(1, dtype=np.int64), empty)
    offsets = [parts[0].offsets]
    for part in parts[1:]:
        offsets.append(part.offsets[1:] + offsets[-1][-1])
    return VectorRows(
        np.concatenate([p.ids for p in parts]),
        np.concatenate([p.keys for p in parts]),
        np.concatenate(offsets),
        np.concatenate([p.values for p in parts]),
    )


def read_segments(conn: Connection, above: int = 0) -> list[VectorRows]:
    """The segments holding vectors past ``above``, in id order."""
    return [decode(data) for data in segmentcache.read_data(conn, SegmentKind.LINE_VECTORS, above)]


def forget(engine: Engine) -> None:
    """Drop every stored vector, making every key one stored before line data (migration 0015): what tests and
    benchmarks of the fill start from."""
    with engine.begin() as conn:
        lock_appends(conn, LINE_VECTORS)
        conn.execute(delete(SegmentRow).where(SegmentRow.kind == SegmentKind.LINE_VECTORS))


class LineVectorTable(SegmentCache[VectorRows]):
    """The process's copy of every stored vector: where each key's values are, by key id."""

    def __init__(self, engine: Engine, marks: CacheMarks | None = None) -> None:
        super().__init__(engine, marks)
        self.start = np.full(1024, -1, dtype=np.int64)  # by key id, where its vector begins in the values; -1: none
        self.length = np.zeros(1024, dtype=np.int64)
        # As narrow as every value allows (_column_type): 16 bits while lines are below 2**15 (every line of the
        # bench's captures), a quarter of the memory and page faults of 64 (~40 pages a churny profile, not 80
        # at 32); widened from the first value that does not fit.
        self._values: npt.NDArray[np.integer[Any]] = np.zeros(1024, dtype=np.uint16)
        self._used = 0
        #: Segments this process appended (committed) whose values are not in ``_values`` yet: a churny profile's
        #: ~85,000 values were copied into fresh pages at every commit (~40 page faults) for the line-granularity
        #: queries alone, which may never come; their keys' ``start`` is ``_UNREAD``.
        self._unread: list[bytes] = []

    def append(
        self,
        keys: IntArray,
        offsets: IntArray,
        values: npt.NDArray[np.integer[Any]],
        appends: Appends | None = None,
    ) -> None:
        """Store the vector of each key ``keys[i]`` (``values[offsets[i]:offsets[i + 1]]``, any integer type; packed
        as the segment packs them, :func:`~server.pprof.frames.frame_values`' are stored without a copy): in
        ``appends`` (the write transaction of the keys themselves; cached once it commits), or in a transaction
        of its own."""
        if keys.size == 0:
            return
        if appends is None:
            with Appends(self._engine) as own:
                self.append(keys, offsets, values, own)
            return
        conn = appends.segments(self)  # the transaction and its locks first, holding no memory lock (appends.py)
        with self._lock:
            if appends.appended_past(LINE_VECTORS, self._high):
                self._catch_up(conn, guarded=appends.guarded)
            ids = self._high + 1 + np.arange(keys.shape[0], dtype=np.int64)
            rows = VectorRows(ids, keys.astype(np.int64), offsets.astype(np.int64), values)
            row = segment_row(rows)
            appends.add_segment(row)
            data: bytes = row["data"]
            appends.after_commit(lambda: self._committed_unread(rows, data))

    def _committed_unread(self, rows: VectorRows, data: bytes) -> None:
        """A segment this process appended has committed: its keys have a vector from now on, whose values stay in
        ``data`` until a query asks for them (unless a catch-up read the segment meanwhile)."""
        with self._lock:
            if int(rows.ids[0]) <= self._high:
                return
            self._positions(rows.keys)
            self.start[rows.keys] = _UNREAD
            self.length[rows.keys] = rows.lengths
            self._unread.append(data)
            self._high = max(self._high, int(rows.ids[-1]))

    def _read_unread(self) -> None:
        """The values of this process's own segments into memory (under the lock), for keys still waiting for them:
        a key whose vector a catch-up loaded meanwhile keeps it (every vector of a key holds the same values)."""
        unread, self._unread = self._unread, []
        for data in unread:
            rows = decode(data)
            self._place(rows.take(self.start[rows.keys] == _UNREAD))

    def _read(self, conn: Connection, above: int) -> list[VectorRows]:
        return read_segments(conn, above)

    def _add(self, rows: VectorRows) -> None:
        """Vectors (in increasing id order, all above those loaded) into the values and the by-key positions."""
        if len(rows) == 0:
            return
        self._place(rows)
        self._high = max(self._high, int(rows.ids[-1]))

    def _positions(self, keys: IntArray) -> None:
        """Room in the by-key positions for every key of ``keys``."""
        top = int(keys.max()) + 1 if keys.size else 0
        if top > self.start.shape[0]:
            size = max(top, 2 * self.start.shape[0])
            old = self.start.shape[0]
            # Stored as start + 1 would spare this fill; -1 reads clearer wherever a vector is looked up.
            self.start = reserved.grown(self.start, size)
            self.start[old:] = -1
            self.length = reserved.grown(self.length, size)

    def _place(self, rows: VectorRows) -> None:
        """Vectors' values into memory and their keys' positions to them. The columns grow in place
        (:mod:`server.store.reserved`): a churny profile adds ~85,000 values, and copies of a growing array
        faulted in most of their pages again."""
        if len(rows) == 0:
            return
        count = rows.values.shape[0]
        wide = np.promote_types(self._values.dtype, _column_type(rows.values))
        if wide != self._values.dtype:
            widened = reserved.zeros(self._values.shape[0], wide)
            widened[: self._used] = self._values[: self._used]
            self._values = widened
        if self._used + count > self._values.shape[0]:
            self._values = reserved.grown(self._values, max(self._used + count, 2 * self._values.shape[0]))
        self._values[self._used : self._used + count] = rows.values
        self._positions(rows.keys)
        # In id order, so a key's later vector (a fill written twice) is the one kept.
        self.start[rows.keys] = self._used + rows.offsets[:-1]
        self.length[rows.keys] = rows.lengths
        self._used += count

    def load(self) -> None:
        """Read the vectors other processes appended since this one last looked."""
        with self._lock, self._engine.connect() as conn:
            self._catch_up(conn)

    def lacking(self, keys: IntArray) -> npt.NDArray[np.bool_]:
        """Which key ids have no stored vector, reading what other processes appended only when some seem to
        lack one (a key another process wrote comes with its vector)."""
        with self._lock:
            if not self._loaded:
                self.load()
            missing = ~self.has(keys)
            if bool(missing.any()):
                self.load()
                missing = ~self.has(keys)
            return missing

    def has(self, keys: IntArray) -> npt.NDArray[np.bool_]:
        """Whether each key id has a vector this process has loaded."""
        inside = (keys >= 0) & (keys < self.start.shape[0])
        found = np.zeros(keys.shape[0], dtype=bool)
        found[inside] = self.start[keys[inside]] != -1  # in memory, or _UNREAD
        return found

    def vectors(self, keys: IntArray) -> tuple[IntArray, IntArray]:
        """The vectors of ``keys`` (every one loaded, see :meth:`has`) one after another, and their offsets."""
        with self._lock:
            if self._unread and bool((self.start[keys] == _UNREAD).any()):
                self._read_unread()
            lengths = self.length[keys]
            offsets = np.zeros(keys.shape[0] + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            values: IntArray = self._values[ragged(self.start[keys], lengths)].astype(np.int64)
            return values, offsets


def _column_type(values: npt.NDArray[np.integer[Any]]) -> np.dtype[Any]:
    """The narrowest of the in-memory column's types (uint16, int32, int64) holding ``values``: from their type
    alone for those packed in 1 or 2 bytes (what ingest appends), else from their range."""
    if (values.dtype.itemsize <= 2 and values.dtype.kind == "u") or values.size == 0:
        return np.dtype(np.uint16)
    low, high = int(values.min()), int(values.max())
    if low >= 0 and high <= _UINT16_MAX:
        return np.dtype(np.uint16)
    return np.dtype(np.int32 if low >= _INT32_MIN and high <= _INT32_MAX else np.int64)


#: ``store_state`` key: profiles stored before this time (ns) may lack line data (see migration 0015).
SINCE = "line_data_since_ns"


def line_data_since_ns(engine: Engine) -> int:
    """Just past the newest profile stored before line data was kept (0: every profile has it)."""
    with engine.connect() as conn:
        return int(conn.execute(select(StoreState.value).where(StoreState.key == SINCE)).scalar() or 0)
