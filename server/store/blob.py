"""The compact encoding of one profile's samples: (leaf node, labelset, values) arrays.

Layout: a 12-byte header (magic ``SY``, version, number of value columns,
row count, flags) followed by one zlib stream of column arrays: node ids as
deltas after sorting (small numbers that compress to almost nothing), labelset
ids, then each value column as little-endian int64. Columns rather than rows
keep like bytes together, which is what makes zlib effective here.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_HEADER = struct.Struct("<2sBBII")
_MAGIC = b"SY"
_VERSION = 1
_FLAG_NODES_32 = 1
_FLAG_LABELSETS = 2

Int64Array = npt.NDArray[np.int64]


@dataclass(slots=True)
class SampleArrays:
    """Rows sorted by (node, labelset); ``values`` has one column per sample type."""

    nodes: Int64Array
    labelsets: Int64Array
    values: Int64Array  # shape (rows, sample types)

    def __len__(self) -> int:
        return int(self.nodes.shape[0])


def aggregate(nodes: Int64Array, labelsets: Int64Array, values: Int64Array) -> SampleArrays:
    """Sort rows by (node, labelset) and sum rows that share both."""
    if nodes.size == 0:
        return SampleArrays(nodes, labelsets, values.reshape(0, values.shape[1] if values.ndim == 2 else 0))
    order = np.lexsort((labelsets, nodes))
    nodes, labelsets, values = nodes[order], labelsets[order], values[order]
    boundary = np.empty(nodes.shape[0], dtype=bool)
    boundary[0] = True
    np.not_equal(nodes[1:], nodes[:-1], out=boundary[1:])
    boundary[1:] |= labelsets[1:] != labelsets[:-1]
    if boundary.all():
        return SampleArrays(nodes, labelsets, values)
    starts = np.flatnonzero(boundary)
    return SampleArrays(nodes[starts], labelsets[starts], np.add.reduceat(values, starts, axis=0))


def encode(arrays: SampleArrays, level: int = 6) -> bytes:
    rows = len(arrays)
    columns = arrays.values.shape[1] if arrays.values.ndim == 2 else 0
    flags = 0
    deltas = np.diff(arrays.nodes, prepend=np.int64(0))
    parts: list[bytes] = []
    if rows == 0 or int(arrays.nodes.max()) < 2**32:
        flags |= _FLAG_NODES_32
        parts.append(deltas.astype("<u4").tobytes())
    else:
        parts.append(deltas.astype("<i8").tobytes())
    if rows and bool(arrays.labelsets.any()):
        flags |= _FLAG_LABELSETS
        parts.append(arrays.labelsets.astype("<i8").tobytes())
    parts.append(np.ascontiguousarray(arrays.values.T, dtype="<i8").tobytes())
    return _HEADER.pack(_MAGIC, _VERSION, columns, rows, flags) + zlib.compress(b"".join(parts), level)


def decode(data: bytes) -> SampleArrays:
    magic, version, columns, rows, flags = _HEADER.unpack_from(data)
    if magic != _MAGIC or version != _VERSION:
        raise ValueError("not a Stackyard sample blob")
    raw = zlib.decompress(data[_HEADER.size :])
    offset = 0
    if flags & _FLAG_NODES_32:
        nodes = np.cumsum(np.frombuffer(raw, "<u4", rows, offset).astype(np.int64))
        offset += 4 * rows
    else:
        nodes = np.cumsum(np.frombuffer(raw, "<i8", rows, offset))
        offset += 8 * rows
    if flags & _FLAG_LABELSETS:
        labelsets = np.frombuffer(raw, "<i8", rows, offset).astype(np.int64)
        offset += 8 * rows
    else:
        labelsets = np.zeros(rows, dtype=np.int64)
    values = np.frombuffer(raw, "<i8", rows * columns, offset).reshape(columns, rows).T.astype(np.int64)
    return SampleArrays(nodes, labelsets, values)
