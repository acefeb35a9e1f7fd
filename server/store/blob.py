"""The compact encoding of one profile's samples: (sample key, values) arrays.

Layout: a 12-byte header (magic ``SY``, version, number of value columns,
row count, flags) followed by one zlib stream of column arrays: sample-key
ids as deltas after sorting (small numbers that compress to almost nothing),
then each value column as little-endian int64. Columns rather than rows keep
like bytes together, which is what makes zlib effective here.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.pprof.checked import grouped_sums

_HEADER = struct.Struct("<2sBBII")
_MAGIC = b"SY"
_VERSION = 2
_FLAG_KEYS_32 = 1

Int64Array = npt.NDArray[np.int64]


@dataclass(slots=True)
class SampleArrays:
    """Rows sorted by sample key, one row per key; ``values`` has one column per sample type."""

    keys: Int64Array
    values: Int64Array  # shape (rows, sample types)

    def __len__(self) -> int:
        return int(self.keys.shape[0])


def _sum_runs(order: Int64Array, boundary: npt.NDArray[np.bool_], values: Int64Array) -> tuple[Int64Array, Int64Array]:
    starts = np.flatnonzero(boundary)
    return starts, np.add.reduceat(values[order], starts, axis=0)


def aggregate(keys: Int64Array, values: Int64Array) -> SampleArrays:
    """Sort rows by key and sum rows that share one."""
    if keys.size == 0:
        return SampleArrays(keys, values.reshape(0, values.shape[1] if values.ndim == 2 else 0))
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    boundary = np.empty(sorted_keys.shape[0], dtype=bool)
    boundary[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=boundary[1:])
    if boundary.all():
        return SampleArrays(sorted_keys, values[order])
    starts, sums = _sum_runs(order, boundary, values)
    return SampleArrays(sorted_keys[starts], sums)


def aggregate_saturating(keys: Int64Array, values: Int64Array) -> tuple[SampleArrays, bool]:
    """:func:`aggregate` for merges of many profiles (rollups): a sum out of the 64-bit range is saturated.

    Returns the arrays and whether any sum was saturated (see :mod:`server.pprof.checked`).
    """
    if keys.size == 0:
        return aggregate(keys, values), False
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    boundary = np.empty(sorted_keys.shape[0], dtype=bool)
    boundary[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=boundary[1:])
    starts = np.flatnonzero(boundary)
    sums, saturated = grouped_sums(values[order], starts)
    return SampleArrays(sorted_keys[starts], sums), saturated


def group_pairs(
    nodes: Int64Array, labelsets: Int64Array, values: Int64Array
) -> tuple[Int64Array, Int64Array, Int64Array]:
    """Sum rows that share (node, label set): the function-level view of keyed rows."""
    if nodes.size == 0:
        return nodes, labelsets, values
    order = np.lexsort((labelsets, nodes))
    sorted_nodes, sorted_labelsets = nodes[order], labelsets[order]
    boundary = np.empty(nodes.shape[0], dtype=bool)
    boundary[0] = True
    np.not_equal(sorted_nodes[1:], sorted_nodes[:-1], out=boundary[1:])
    boundary[1:] |= sorted_labelsets[1:] != sorted_labelsets[:-1]
    starts, sums = _sum_runs(order, boundary, values)
    return sorted_nodes[starts], sorted_labelsets[starts], sums


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
    magic, version, columns, rows, flags = _HEADER.unpack_from(data)
    if magic != _MAGIC or version != _VERSION:
        raise ValueError("not a Stackyard sample blob (or one of an unsupported version)")
    raw = zlib.decompress(data[_HEADER.size :])
    offset = 0
    if flags & _FLAG_KEYS_32:
        keys = np.cumsum(np.frombuffer(raw, "<u4", rows, offset).astype(np.int64))
        offset += 4 * rows
    else:
        keys = np.cumsum(np.frombuffer(raw, "<i8", rows, offset))
        offset += 8 * rows
    values = np.frombuffer(raw, "<i8", rows * columns, offset).reshape(columns, rows).T.astype(np.int64)
    return SampleArrays(keys, values)
