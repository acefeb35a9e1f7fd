"""The grouping helpers give exactly the arrays ``np.unique`` gives, on the shapes the queries hand them."""

from __future__ import annotations

import numpy as np
import pytest

from server.query.grouping import distinct, distinct_inverse, groups


def _cases() -> list[np.ndarray]:
    rng = np.random.default_rng(17)
    return [
        np.zeros(0, dtype=np.int64),
        np.array([5], dtype=np.int64),
        np.array([3, 3, 3], dtype=np.int64),
        np.array([-1, 2, -1, 0, 2, -(2**63), 2**63 - 1], dtype=np.int64),
        rng.integers(0, 50, 1_000),  # many repeats
        rng.integers(-(2**62), 2**62, 5_000),  # nearly all distinct
        np.repeat(np.arange(300, dtype=np.int64), 7)[::-1].copy(),  # runs, descending
        (rng.integers(0, 2_000, 20_000) << 31) | rng.integers(0, 40, 20_000),  # packed (parent, function) keys
    ]


@pytest.mark.parametrize("values", _cases())
def test_distinct_is_numpy_unique(values: np.ndarray) -> None:
    found = distinct(values)
    assert found.dtype == np.int64
    assert np.array_equal(found, np.unique(values))


@pytest.mark.parametrize("values", _cases())
def test_distinct_inverse_is_numpy_unique_with_its_inverse(values: np.ndarray) -> None:
    found, inverse = distinct_inverse(values)
    expected, expected_inverse = np.unique(values, return_inverse=True)
    assert np.array_equal(found, expected)
    assert np.array_equal(inverse, expected_inverse.reshape(-1))
    assert np.array_equal(found[inverse], values)


@pytest.mark.parametrize("values", _cases())
def test_groups_are_numpy_uniques_first_index_and_inverse(values: np.ndarray) -> None:
    first, inverse = groups(values)
    _, expected_first, expected_inverse = np.unique(values, return_index=True, return_inverse=True)
    assert np.array_equal(first, expected_first)  # each group's smallest index, whatever order the sort left
    assert np.array_equal(inverse, expected_inverse.reshape(-1))
