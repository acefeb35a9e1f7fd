"""The flame graph's node limit picks by selection what a full sort picked: the same nodes, ties included."""

from __future__ import annotations

import numpy as np

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
