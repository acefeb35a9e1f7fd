"""The call tree passes in C (``_calltree.c``) against the numpy they replaced: totals summed up the tree a
level at a time, and the flame graph's pruning; 64-bit wraparound included, and bad input refused whole.
(The node limit's selection is in test_widest.py.)"""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.query._calltree import fold, sum_up


@given(st.integers(min_value=0, max_value=300), st.integers(min_value=1, max_value=3), st.integers(0, 2**32))
@settings(max_examples=60, deadline=None)
def test_sum_up_equals_summing_a_level_at_a_time(count: int, columns_wanted: int, seed: int) -> None:
    rng = random.Random(seed)
    parent = np.array([rng.randrange(-1, node) for node in range(count)], dtype=np.int64)
    values = np.array(
        [[rng.randrange(-(2**62), 2**62) for _ in range(columns_wanted)] for _ in range(count)], dtype=np.int64
    ).reshape(count, columns_wanted)
    expected = values.copy()
    depth = np.zeros(count, dtype=np.int64)
    for node in range(count):
        depth[node] = depth[parent[node]] + 1 if parent[node] >= 0 else 0
    for level in sorted(set(depth.tolist()), reverse=True):  # numpy's way: deepest first, wrapping as numpy does
        at = np.flatnonzero((depth == level) & (parent >= 0))
        np.add.at(expected, parent[at], expected[at])
    totals = values.copy()
    sum_up(totals, parent)
    assert totals.tolist() == expected.tolist()
    narrow = values.copy()  # int32 parents (a tree gathered from the store) are read the same
    sum_up(narrow, parent.astype(np.int32))
    assert narrow.tolist() == expected.tolist()


def test_sum_up_refuses_a_parent_out_of_order_and_totals_of_another_length() -> None:
    totals = np.ones((3, 1), dtype=np.int64)
    with pytest.raises(ValueError, match="parent index"):
        sum_up(totals, np.array([-1, 0, 2], dtype=np.int64))  # its own index: not below it
    assert totals.ravel().tolist() == [1, 1, 1]  # nothing changed
    with pytest.raises(ValueError, match="for every parent index"):
        sum_up(np.ones((2, 1), dtype=np.int64), np.array([-1, 0, 1], dtype=np.int64))
    with pytest.raises(ValueError, match="int64"):
        sum_up(np.ones((3, 1), dtype=np.int32), np.array([-1, 0, 1], dtype=np.int64))
    with pytest.raises(ValueError, match="parent must be a column of int32 or int64"):
        sum_up(totals, np.array([-1, 0, 1], dtype=np.int16))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="parent index"):
        sum_up(totals, np.array([-1, 0, 2], dtype=np.int32))
    assert totals.ravel().tolist() == [1, 1, 1]


@given(
    st.integers(min_value=0, max_value=300),
    st.integers(min_value=1, max_value=2),
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(0, 2**32),
)
@settings(max_examples=60, deadline=None)
def test_fold_equals_the_numpy_pruning(count: int, columns_wanted: int, share: float, seed: int) -> None:
    rng = random.Random(seed)
    parent = np.array([rng.randrange(-1, node) for node in range(count)], dtype=np.int64)
    totals = np.array(
        [[rng.randrange(-(2**62), 2**62) for _ in range(columns_wanted)] for _ in range(count)], dtype=np.int64
    ).reshape(count, columns_wanted)
    keep = np.array([rng.random() < share for _ in range(count)], dtype=bool)
    # The numpy version the flame graph used before.
    kept = np.flatnonzero(keep)
    index = np.cumsum(keep) - 1
    inside = (parent[kept] >= 0) & keep[np.maximum(parent[kept], 0)]
    expected_parent = np.where(inside, index[np.maximum(parent[kept], 0)], -1)
    folded = np.flatnonzero(~keep & ((parent < 0) | keep[np.maximum(parent, 0)]))
    expected_sums = np.zeros((kept.shape[0] + 1, columns_wanted), dtype=np.int64)
    folded_parent = np.where(parent[folded] >= 0, index[np.maximum(parent[folded], 0)], -1)
    np.add.at(expected_sums, folded_parent + 1, totals[folded])
    got_kept, got_parent = np.empty(kept.shape[0], dtype=np.int64), np.empty(kept.shape[0], dtype=np.int64)
    sums = np.zeros((kept.shape[0] + 1, columns_wanted), dtype=np.int64)
    parent.flags.writeable = totals.flags.writeable = False  # only read: a read-only tree will do
    for width in (np.int64, np.int32):  # int32 parents (a tree gathered from the store) are read the same
        got_kept[:], got_parent[:], sums[:] = -7, -7, 0
        fold(keep, parent.astype(width), totals, got_kept, got_parent, sums)  # type: ignore[arg-type]
        assert got_kept.tolist() == kept.tolist()
        assert got_parent.tolist() == expected_parent.tolist()
        assert sums.tolist() == expected_sums.tolist()


def test_fold_refuses_arrays_of_other_lengths_and_a_parent_out_of_order() -> None:
    keep = np.array([True, False, True])
    totals = np.ones((3, 1), dtype=np.int64)
    outputs = (np.empty(2, dtype=np.int64), np.empty(2, dtype=np.int64))
    sums = np.zeros((3, 1), dtype=np.int64)
    with pytest.raises(ValueError, match="parent index"):
        fold(keep, np.array([-1, 1, 0], dtype=np.int64), totals, *outputs, sums)
    assert not sums.any()
    with pytest.raises(ValueError, match="one entry a drawn node"):
        fold(keep, np.array([-1, 0, 0], dtype=np.int64), totals, *outputs, np.zeros((2, 1), dtype=np.int64))
    with pytest.raises(ValueError, match="parent index"):
        fold(keep, np.array([-1, 1, 0], dtype=np.int32), totals, *outputs, sums)
    with pytest.raises(ValueError, match="parent must be a column of int32 or int64"):
        fold(keep, np.array([-1, 0, 0], dtype=np.float64), totals, *outputs, sums)  # type: ignore[arg-type]
    assert not sums.any()
