"""Summing rows per sample key, and per (node, label set): small hand-made arrays with the sums worked out."""

from __future__ import annotations

import numpy as np

from server.pprof.checked import SATURATED
from server.store.samples import aggregate, aggregate_saturating, group_pairs


def ints(values: list[int] | list[list[int]]) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_aggregate_sorts_by_key_and_sums_repeats() -> None:
    summed = aggregate(ints([9, 3, 9, 1, 3]), ints([[1, 10], [2, 20], [4, 40], [8, 80], [16, 160]]))
    assert summed.keys.tolist() == [1, 3, 9]
    assert summed.values.tolist() == [[8, 80], [18, 180], [5, 50]]


def test_aggregate_of_distinct_keys_only_sorts() -> None:
    summed = aggregate(ints([5, 2, 7]), ints([[1], [2], [3]]))
    assert (summed.keys.tolist(), summed.values.tolist()) == ([2, 5, 7], [[2], [1], [3]])


def test_aggregate_of_nothing_keeps_the_columns() -> None:
    summed = aggregate(ints([]), np.zeros((0, 3), dtype=np.int64))
    assert len(summed) == 0 and summed.values.shape == (0, 3)


def test_aggregate_of_negative_values_cancels() -> None:
    summed = aggregate(ints([4, 4, 2]), ints([[5], [-5], [-1]]))
    assert (summed.keys.tolist(), summed.values.tolist()) == ([2, 4], [[-1], [0]])


def test_saturating_sums_flag_what_passes_64_bits() -> None:
    near = 2**62
    summed, saturated = aggregate_saturating(ints([1, 1, 2]), ints([[near], [near], [3]]))
    assert saturated
    assert summed.keys.tolist() == [1, 2]
    assert summed.values.tolist() == [[SATURATED], [3]]
    fine, flagged = aggregate_saturating(ints([1, 1]), ints([[near], [-near]]))
    assert not flagged and fine.values.tolist() == [[0]]


def test_group_pairs_sums_rows_sharing_node_and_label_set() -> None:
    nodes, labelsets, values = group_pairs(
        ints([3, 1, 3, 3, 1]), ints([0, 2, 0, 5, 2]), ints([[1, 1], [2, 2], [4, 4], [8, 8], [16, 16]])
    )
    assert nodes.tolist() == [1, 3, 3]
    assert labelsets.tolist() == [2, 0, 5]
    assert values.tolist() == [[18, 18], [5, 5], [8, 8]]
