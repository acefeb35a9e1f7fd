"""The flame graph's node limit picks, in one pass with a heap, what a full sort picked: the same nodes and ties."""

from __future__ import annotations

import numpy as np
import pytest

from server.query._calltree import widest
from server.query.flamegraph import _widest


def test_selection_equals_the_first_of_a_sort_by_width_then_index() -> None:
    rng = np.random.default_rng(1)
    for _ in range(2000):
        n = int(rng.integers(1, 60))
        width = rng.integers(-3, 6, n).astype(np.int64)  # few values: many ties; negatives as a diff has
        count = int(rng.integers(0, n + 3))
        expected = np.zeros(n, dtype=bool)
        expected[np.lexsort((np.arange(n), -width))[:count]] = True
        assert _widest(width, count).tolist() == expected.tolist(), (width.tolist(), count)


def test_widths_in_increasing_order_replace_the_heap_each_time_and_still_pick_the_widest() -> None:
    """Every node wider than all before it: the worst case of the heap (each one displaces the top)."""
    width = np.arange(10_000, dtype=np.int64)
    assert np.flatnonzero(_widest(width, 7)).tolist() == list(range(9_993, 10_000))


def test_bad_arguments_are_refused_before_anything_is_written() -> None:
    out = np.zeros(3, dtype=bool)
    with pytest.raises(ValueError, match="one length"):
        widest(np.zeros(4, dtype=np.int64), 2, out)
    with pytest.raises(ValueError, match="count >= 0"):
        widest(np.zeros(3, dtype=np.int64), -1, out)
    with pytest.raises(ValueError, match="out must be a writable column of bool"):
        widest(np.zeros(3, dtype=np.int64), 1, np.zeros(3, dtype=np.int8))
    assert not out.any()
