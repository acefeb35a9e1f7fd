"""The byte layout of one segment of the stack prefix tree: a run of nodes written together.

A node is ``(id, parent, frame, recursive)``; ``frame`` is a function id in the
function tree (any integer id for another tree of frames). Stored row by row,
each node cost a table row plus a unique-index entry; stored as a segment,
nodes written together are a few compressed columns:

- node ids as deltas from the header's first id (all 1 unless garbage
  collection left gaps);
- ``id - parent``: ids are handed out depth first along each new stack, so a
  node's parent is usually the node just before it and this column is mostly 1;
- frame ids;
- the recursive flags as a bitmap.

Integer columns are stored as byte planes (all low bytes, then the next ...):
the compressor then finds the long runs of zero high bytes and the skewed low
bytes; interleaved, it did ~30 % worse on frame ids. The column bytes are
written in C (:func:`server.store._treeindex.columns`), in two passes over the
nodes.

Columns rather than rows keep like bytes together, which is what makes the
compressor effective. ``depth`` is not stored: it follows from the parents.
Each integer column is 32-bit when its values fit, 64-bit otherwise (a flag
bit per column).

Layout: a 16-byte header (magic ``SN``, version, flags, node count, first id)
then the columns compressed: version 3 as raw deflate from ISA-L (``isal``)
at its level 2, version 2 with zstd, version 1 with zlib (both still read).
A churny profile's tree segment (~54,000 nodes, 658 KB of columns) took
0.55 ms with zstd's fast strategy (level 1's, 64 KB window, 2**14-entry hash
table, matches of 6 bytes or more) and 0.32 ms with ISA-L, for 1 % more
bytes (85.4 KB against 84.5); ingest writes one such segment a new stack set,
and ISA-L's inflate is what decoding a profile already uses. Reading it back
takes 0.31 ms against zstd's 0.20 (docs/storage-history.md), paid once a segment by a
process that loads the tree. The columns' byte planes are what lets a
Huffman coder alone do as well as zstd: most of the information is in the
frame ids' two low planes, which repeat little on a churny service.
Bytes that do not
hold what the header says are refused with :class:`CorruptSegment` naming
what is wrong: a torn segment must never load as fewer or shifted nodes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
import zstandard
from isal import isal_zlib

from server.store._treeindex import columns

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_HEADER = struct.Struct("<2sBBIQ")
_MAGIC = b"SN"
_ZLIB = 1
_ZSTD = 2
_DEFLATE = 3
_WIDE_IDS = 1
_WIDE_PARENTS = 2
_WIDE_FRAMES = 4
#: See the module's docstring. Raw deflate: no zlib header, and no Adler-32 over the columns (the segment's
#: header already says how many bytes the columns are, and decoding checks it).
_LEVEL = 2
_RAW = -15
#: isal's stub declares its error as an instance, not a class.
_DEFLATE_ERROR = cast(type[Exception], isal_zlib.error)


class CorruptSegment(ValueError):
    """Stored bytes that are not a whole stack segment."""


@dataclass(slots=True)
class Segment:
    """Nodes in increasing id order; every parent is smaller than its child (0 is the root)."""

    ids: IntArray
    parents: IntArray
    frames: IntArray
    recursive: BoolArray

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def _uncolumn(raw: bytes, offset: int, count: int, width: int) -> IntArray:
    planes = np.frombuffer(raw, np.uint8, count * width, offset).reshape(width, count)
    values = np.ascontiguousarray(planes.T).view("<u4" if width == 4 else "<i8").reshape(count)
    return values.astype(np.int64)


def encode(segment: Segment) -> bytes:
    """The segment's bytes; raises ``ValueError`` for nodes that break the tree's order rules."""
    count = len(segment)
    ids, parents, frames = (
        np.ascontiguousarray(c, dtype=np.int64) for c in (segment.ids, segment.parents, segment.frames)
    )
    raw, flags = columns(ids, parents, frames, np.ascontiguousarray(segment.recursive, dtype=np.bool_))
    first = int(ids[0]) if count else 0
    return encode_columns(raw, flags, count, first)


def encode_columns(raw: bytes, flags: int, count: int, first: int) -> bytes:
    """A segment's bytes from its column bytes as :func:`server.store._treeindex.columns` (or an index's
    ``segment_columns``) makes them: a new segment is encoded straight from the walk that made its nodes."""
    return _HEADER.pack(_MAGIC, _DEFLATE, flags, count, first) + deflate(raw, _LEVEL)


def deflate(data: bytes | memoryview, level: int) -> bytes:
    """``data`` as raw deflate (no header, no checksum: a segment's own header says how long the data is, and
    decoding checks it) from ISA-L at ``level`` (0-3): the codec of the segments ingest writes most bytes of."""
    deflater = isal_zlib.compressobj(level, isal_zlib.DEFLATED, _RAW)
    compressed: bytes = deflater.compress(data) + deflater.flush()
    return compressed


def inflate(body: bytes, expected: int, what: str, *, zlib_stream: bool = False) -> bytes:
    """Raw deflate ``body`` (or, with ``zlib_stream``, a zlib stream: stack segments of version 1) inflated to at
    most ``expected`` bytes (its header's count bounds the memory taken); :class:`CorruptSegment` naming ``what``
    when the stream is damaged, cut short, or has bytes past its end. The caller checks the length against
    ``expected``."""
    try:
        inflater = zlib.decompressobj() if zlib_stream else isal_zlib.decompressobj(_RAW)
        raw: bytes = inflater.decompress(body, expected + 1)
    except (zlib.error, _DEFLATE_ERROR) as exc:
        raise CorruptSegment(f"{what} do not decompress: {exc}") from None
    if not inflater.eof or inflater.unused_data:
        raise CorruptSegment(f"{what} do not decompress: the stream is cut short or too long")
    return raw


def unzstd(body: bytes, expected: int, what: str, mismatch: str) -> bytes:
    """One zstd frame of exactly ``expected`` bytes (stack segments and line vectors written with zstd, still read;
    the columns of :mod:`server.store.columncodec` and the strings of function segments); :class:`CorruptSegment`
    naming ``what`` otherwise. The frame's declared size is checked before anything is decompressed: the frame's
    own size would decide the memory taken. ``mismatch`` is the message for a frame of another size, its
    ``{size}`` filled in."""
    try:
        size = zstandard.frame_content_size(body)
        if size != expected:
            raise CorruptSegment(mismatch.format(size=size))
        raw: bytes = zstandard.ZstdDecompressor().decompress(body)
    except zstandard.ZstdError as exc:
        raise CorruptSegment(f"{what} do not decompress: {exc}") from None
    return raw


def _decompress(version: int, body: bytes, expected: int, count: int) -> bytes:
    """The column bytes; never more than ``expected`` of them (the header's count bounds the memory)."""
    if version != _ZSTD:
        return inflate(body, expected, "stack segment columns", zlib_stream=version == _ZLIB)
    mismatch = "stack segment holds {size} bytes of columns; its header says " + f"{count} nodes"
    return unzstd(body, expected, "stack segment columns", mismatch)


def _header(data: bytes) -> tuple[int, int, int, int]:
    """(version, flags, node count, first id) of a segment's header; :class:`CorruptSegment` for anything else."""
    if len(data) < _HEADER.size:
        raise CorruptSegment(f"stack segment of {len(data)} bytes is shorter than its {_HEADER.size}-byte header")
    magic, version, flags, count, first = _HEADER.unpack_from(data)
    if magic != _MAGIC or version not in (_ZLIB, _ZSTD, _DEFLATE):
        raise CorruptSegment("not a Stackyard stack segment (or one of an unsupported version)")
    return version, flags, count, first


def span(data: bytes) -> tuple[int, int]:
    """A segment's (first id, node count), read from its header alone: what room a load needs is known
    before any segment is decoded."""
    _, _, count, first = _header(data)
    return first, count


def decode(data: bytes) -> Segment:
    version, flags, count, first = _header(data)
    widths = [8 if flags & flag else 4 for flag in (_WIDE_IDS, _WIDE_PARENTS, _WIDE_FRAMES)]
    expected = count * sum(widths) + (count + 7) // 8
    raw = _decompress(version, data[_HEADER.size :], expected, count)
    if len(raw) != expected:
        raise CorruptSegment(f"stack segment holds {len(raw)} bytes of columns; its header says {count} nodes")
    columns: list[IntArray] = []
    offset = 0
    for width in widths:
        columns.append(_uncolumn(raw, offset, count, width))
        offset += width * count
    deltas, parent_gaps, frames = columns
    recursive = np.unpackbits(np.frombuffer(raw, np.uint8, (count + 7) // 8, offset), count=count).astype(bool)
    if count and (int(deltas[0]) != 0 or bool((deltas[1:] < 1).any())):
        raise CorruptSegment("stack segment node ids are not increasing")
    ids = first + np.cumsum(deltas)
    parents = ids - parent_gaps
    if count and (int(first) < 1 or bool(((parent_gaps < 1) | (parents < 0)).any())):
        raise CorruptSegment("stack segment has a node whose parent is not below it")
    return Segment(ids, parents, frames, recursive)
