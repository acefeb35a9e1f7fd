"""A profile's samples as the store keeps them: one row per sample key, one value column per sample type.

Writing a profile, merging profiles into a rollup and merging them for a
query are all the same array work: sort rows by key and add up the rows that
share one. It lives here, apart from the byte layout (:mod:`server.store.blob`),
so the query layer sums what the store hands it without knowing how it is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.pprof.checked import grouped_sums

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
