"""The byte layout of one profile's samples (:class:`~server.store.samples.SampleArrays`) in the database.

Layout: a 12-byte header (magic ``SY``, version, number of value columns,
row count, flags) followed by one zlib stream of column arrays: sample-key
ids as deltas after sorting (small numbers that compress to almost nothing),
then each value column as little-endian int64. Columns rather than rows keep
like bytes together, which is what makes zlib effective here.

A blob that does not hold what its header says (torn, truncated, another
format) is refused with :class:`CorruptBlob` naming what is wrong, never read
as fewer or shifted samples.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from server.store.samples import SampleArrays

_HEADER = struct.Struct("<2sBBII")
_MAGIC = b"SY"
_VERSION = 2
_FLAG_KEYS_32 = 1


class CorruptBlob(ValueError):
    """Stored bytes that are not a whole sample blob."""


def encode(arrays: SampleArrays, level: int = 6) -> bytes:
    rows = len(arrays)
    columns = arrays.values.shape[1] if arrays.values.ndim == 2 else 0
    flags = 0
    deltas = np.diff(arrays.keys, prepend=np.int64(0))
    parts: list[bytes] = []
    if rows == 0 or int(arrays.keys.max()) < 2**32:
        flags |= _FLAG_KEYS_32
        parts.append(deltas.astype("<u4").tobytes())
    else:
        parts.append(deltas.astype("<i8").tobytes())
    parts.append(np.ascontiguousarray(arrays.values.T, dtype="<i8").tobytes())
    return _HEADER.pack(_MAGIC, _VERSION, columns, rows, flags) + zlib.compress(b"".join(parts), level)


def decode(data: bytes) -> SampleArrays:
    if len(data) < _HEADER.size:
        raise CorruptBlob(f"sample blob of {len(data)} bytes is shorter than its {_HEADER.size}-byte header")
    magic, version, columns, rows, flags = _HEADER.unpack_from(data)
    if magic != _MAGIC or version != _VERSION:
        raise CorruptBlob("not a Stackyard sample blob (or one of an unsupported version)")
    key_width = 4 if flags & _FLAG_KEYS_32 else 8
    expected = rows * (key_width + 8 * columns)
    try:
        # Sized to what the header promises: one allocation, no regrowing, for the query's hot path.
        raw = zlib.decompress(data[_HEADER.size :], bufsize=max(expected, 1))
    except zlib.error as exc:
        raise CorruptBlob(f"sample blob columns do not decompress: {exc}") from None
    if len(raw) != expected:
        raise CorruptBlob(
            f"sample blob holds {len(raw)} bytes of columns; its header says {rows} rows of {columns} values"
        )
    if key_width == 4:
        keys = np.cumsum(np.frombuffer(raw, "<u4", rows, 0).astype(np.int64))
    else:
        keys = np.cumsum(np.frombuffer(raw, "<i8", rows, 0))
    values = np.frombuffer(raw, "<i8", rows * columns, key_width * rows).reshape(columns, rows).T.astype(np.int64)
    return SampleArrays(keys, values)
