"""The byte layout of a run of integer rows written together: sample-key segments, and the integer parts of
function segments and line vectors' heads.

Sample keys ``(hash, node, label set)`` used to be table rows with a unique
index, ~40 bytes a key on SQLite and more on PostgreSQL (line frames
``(function, line)`` too, until migration 0022 replaced them with line
vectors; their old segments had the same layout, and key segments older than
it a fourth column, a line node). Like the stack tree's nodes
(:mod:`server.store.stackcodec`) they are now appended as segments: rows with
increasing ids, stored as one compressed block of columns. Each column is stored

- as its values or as the differences from the row before (whichever needs
  fewer bytes: key rows written together point at nodes numbered together,
  so their node column is mostly small steps);
- zigzag-coded (a negative value costs one bit, not eight bytes);
- as byte planes, only as many as its largest value needs (every value's low
  byte, then the next...): the compressor then sees runs of like bytes.

The ids are the first column, as deltas from the header's first id (1 unless
garbage collection left gaps).

Layout: a 16-byte header (2-byte magic naming the kind of rows, version,
column count, row count, first id), one descriptor byte per column (planes in
the low four bits, 0x10 when delta-coded), then one zstd frame holding the
planes. Bytes that are not what the header says are refused with
:class:`~server.store.stackcodec.CorruptSegment`, never read as fewer or
shifted rows; the header's row count bounds what is decompressed.
"""

from __future__ import annotations

import struct
import threading

import numpy as np
import numpy.typing as npt
import zstandard

from server.store._planes import rows
from server.store.stackcodec import CorruptSegment, unzstd

IntArray = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

_HEADER = struct.Struct("<2sBBIQ")
_VERSION = 1
_LEVEL = 3
#: For segments whose bytes are mostly random: sample keys' 64-bit hashes are 8 of their ~10 planes and do not
#: compress. A churny profile's ~2,000 new keys (26 KB of planes) took 80 us at level 3 and 18 us at level -1,
#: for 2 % more bytes (22.1 KB against 21.7).
FAST_LEVEL = -1
_DELTA = 0x10
_PLANES = 0x0F
#: This thread's compressors by level: one may not be shared between threads at once, and making one per segment
#: cost twice the compression of a steady profile's few hundred new rows (13 µs against 4).
_COMPRESSOR = threading.local()


def _zigzag(values: IntArray) -> U64:
    signed = values.astype(np.int64, copy=False)
    zigzag: U64 = ((signed << 1) ^ (signed >> 63)).view(np.uint64)
    return zigzag


def _unzigzag(coded: U64) -> IntArray:
    values: IntArray = ((coded >> np.uint64(1)).view(np.int64)) ^ -((coded & np.uint64(1)).view(np.int64))
    return values


def _planes(top: int) -> int:
    """Byte planes a column whose largest coded value is ``top`` needs."""
    return (top.bit_length() + 7) // 8


def encode(magic: bytes, ids: IntArray, columns: list[IntArray], level: int = _LEVEL) -> bytes:
    """Rows ``ids[i]`` with ``columns[c][i]``, the planes compressed at zstd's ``level``; ids positive and
    increasing (``ValueError`` otherwise).

    The descriptors and byte planes come from the C extension (:func:`server.store._planes.rows`), two passes
    a column: a high-churn profile writes four segments, and coding them with numpy took a dozen array
    operations a column whatever its length (~50 us a segment of a handful of rows, 0.6-0.8 ms a profile).
    :func:`planes_numpy` gives the same bytes, and is what the extension is held equal to.
    """
    descriptors, planes = rows(
        np.ascontiguousarray(ids, dtype=np.int64), [np.ascontiguousarray(c, dtype=np.int64) for c in columns]
    )
    count = int(ids.shape[0])
    first = int(ids[0]) if count else 0
    return _HEADER.pack(magic, _VERSION, len(columns), count, first) + descriptors + compressor(level).compress(planes)


def compressor(level: int) -> zstandard.ZstdCompressor:
    """This thread's zstd compressor at ``level`` (one may not be shared between threads at once): the segments'
    coders share them."""
    made: dict[int, zstandard.ZstdCompressor] | None = getattr(_COMPRESSOR, "made", None)
    if made is None:
        made = _COMPRESSOR.made = {}
    found = made.get(level)
    if found is None:
        found = made[level] = zstandard.ZstdCompressor(level=level)
    return found


def planes_numpy(ids: IntArray, columns: list[IntArray]) -> tuple[bytes, bytes]:
    """The descriptor bytes and byte planes of :func:`encode`, with numpy: the reference the C extension's
    :func:`server.store._planes.rows` is tested against."""
    count = int(ids.shape[0])
    if count and (int(ids[0]) < 1 or bool((np.diff(ids) < 1).any())):
        raise ValueError("segment ids must be positive and increasing")
    if any(int(column.shape[0]) != count for column in columns):
        raise ValueError("every column of a segment holds one value per id")
    table = np.empty((len(columns) + 1, count), dtype=np.int64)
    for row, values in enumerate(columns, start=1):
        table[row] = values
    if count:  # the ids' steps from the first id (never themselves delta-coded)
        table[0, 0] = 0
        np.subtract(ids[1:], ids[:-1], out=table[0, 1:], casting="unsafe")
    coded = _zigzag(table)
    tops = coded.max(axis=1).tolist() if count else [0] * table.shape[0]
    descriptors = [_planes(top) for top in tops]
    if count > 1:
        steps = np.empty_like(table[1:])
        steps[:, 0] = table[1:, 0]
        np.subtract(table[1:, 1:], table[1:, :-1], out=steps[:, 1:])  # wraps around, as the decoder's sum does
        coded_steps = _zigzag(steps)
        for row, top in enumerate(coded_steps.max(axis=1).tolist(), start=1):
            if _planes(top) < descriptors[row]:
                coded[row] = coded_steps[row - 1]
                descriptors[row] = _planes(top) | _DELTA
    # Byte planes, column after column: plane p of a column is byte p of each of its coded values.
    planes = coded.astype("<u8", copy=False).view(np.uint8).reshape(table.shape[0], count, 8).transpose(0, 2, 1)
    wanted = np.arange(8) < np.array([d & _PLANES for d in descriptors])[:, None]
    return bytes(descriptors), planes[wanted].tobytes()


def columns_of(data: bytes) -> int:
    """The column count a segment's header gives (0 for bytes shorter than a header): how a kind whose rows
    lost a column tells its old segments apart."""
    if len(data) < _HEADER.size:
        return 0
    columns: int = _HEADER.unpack_from(data)[2]
    return columns


def decode(magic: bytes, width: int, data: bytes) -> tuple[IntArray, list[IntArray]]:
    """The ids and ``width`` columns of a segment of kind ``magic``."""
    if len(data) < _HEADER.size:
        raise CorruptSegment(f"segment of {len(data)} bytes is shorter than its {_HEADER.size}-byte header")
    found, version, columns, count, first = _HEADER.unpack_from(data)
    if found != magic or version != _VERSION:
        raise CorruptSegment(f"not a {magic.decode()} segment (or one of an unsupported version)")
    if columns != width:
        raise CorruptSegment(f"{magic.decode()} segment has {columns} columns, not {width}")
    start = _HEADER.size + 1 + width
    if len(data) < start:
        raise CorruptSegment(f"{magic.decode()} segment is cut short in its column descriptors")
    descriptors = list(data[_HEADER.size : start])
    planes = [d & _PLANES for d in descriptors]
    if any(p > 8 for p in planes) or descriptors[0] & _DELTA:
        raise CorruptSegment(f"{magic.decode()} segment has a column descriptor out of range")
    expected = count * sum(planes)
    body = data[start:]
    kind = magic.decode()
    mismatch = f"{kind} segment holds {{size}} bytes of columns; its header says {count}"
    raw = unzstd(body, expected, f"{kind} segment columns", mismatch)
    if len(raw) != expected:
        raise CorruptSegment(f"{kind} segment holds {len(raw)} bytes of columns; its header says {count}")
    values: list[IntArray] = []
    offset = 0
    for descriptor, plane_count in zip(descriptors, planes, strict=True):
        wide = np.zeros((count, 8), dtype=np.uint8)
        if plane_count:
            wide[:, :plane_count] = (
                np.frombuffer(raw, np.uint8, count * plane_count, offset).reshape(plane_count, count).T
            )
        offset += count * plane_count
        coded = wide.view("<u8").reshape(count).astype(np.uint64)
        column = _unzigzag(coded)
        if descriptor & _DELTA:
            with np.errstate(over="ignore"):
                column = np.cumsum(column, dtype=np.int64)
        values.append(column)
    steps = values[0]
    if count and (int(steps[0]) != 0 or bool((steps[1:] < 1).any()) or first < 1):
        raise CorruptSegment(f"{magic.decode()} segment ids are not increasing")
    ids: IntArray = first + np.cumsum(steps)
    return ids, values[1:]
