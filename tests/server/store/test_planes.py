"""The C byte-plane coder of integer segments gives the bytes of its numpy twin on every shape of column (values
or steps, negative, wrapping, empty, one row) and refuses what the twin refuses, with the same messages."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from server.store import columncodec
from server.store._planes import rows

IntArray = npt.NDArray[np.int64]
EXTREMES = (-(2**63), 2**63 - 1, -1, 0, 1, 2**31, -(2**31))


def both(ids: IntArray, columns: list[IntArray]) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
    return rows(ids, columns), columncodec.planes_numpy(ids, columns)


def test_each_kind_of_column_codes_as_numpy_does() -> None:
    rng = np.random.default_rng(11)
    ids = np.cumsum(rng.integers(1, 5, 700)) + 3
    columns = [
        rng.integers(-(2**63), 2**63 - 1, 700, dtype=np.int64),  # every bit: 8 planes as values
        np.cumsum(rng.integers(0, 3, 700)),  # past a byte, in steps of less: coded as steps
        np.zeros(700, dtype=np.int64),  # no plane at all
        np.where(rng.random(700) < 0.5, -1, rng.integers(0, 2**40, 700)),
        np.array([EXTREMES[i % len(EXTREMES)] for i in range(700)], dtype=np.int64),  # steps that wrap around
    ]
    c_coded, numpy_coded = both(ids, columns)
    assert c_coded == numpy_coded
    descriptors = c_coded[0]
    assert descriptors[2] & 0x10 and not descriptors[1] & 0x10 and descriptors[3] == 0  # steps, values, nothing


@pytest.mark.parametrize("count", [0, 1, 2])
def test_short_segments_code_as_numpy_does(count: int) -> None:
    ids = np.arange(5, 5 + count, dtype=np.int64)
    columns = [np.full(count, 300, dtype=np.int64), np.full(count, -(2**63), dtype=np.int64)]
    c_coded, numpy_coded = both(ids, columns)
    assert c_coded == numpy_coded
    if count == 1:  # one row's step is its value: never delta-coded
        assert all(not d & 0x10 for d in c_coded[0])


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 40).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(1, 2**40), min_size=n, max_size=n),
            st.lists(
                hnp.arrays(np.int64, n, elements=st.one_of(st.sampled_from(EXTREMES), st.integers(-300, 300))),
                max_size=5,
            ),
        )
    )
)
def test_any_rows_code_as_numpy_does(drawn: tuple[list[int], list[IntArray]]) -> None:
    steps, columns = drawn
    ids = np.cumsum(np.array(steps, dtype=np.int64))
    c_coded, numpy_coded = both(ids, columns)
    assert c_coded == numpy_coded
    decoded_ids, decoded = columncodec.decode(b"SK", len(columns), columncodec.encode(b"SK", ids, columns))
    assert decoded_ids.tolist() == ids.tolist()
    assert [c.tolist() for c in decoded] == [c.tolist() for c in columns]


@pytest.mark.parametrize(
    ("ids", "columns", "error", "words"),
    [
        ([3, 3], [[1, 2]], ValueError, "positive and increasing"),
        ([0, 1], [[1, 2]], ValueError, "positive and increasing"),
        ([4, 2], [[1, 2]], ValueError, "positive and increasing"),
        ([1, 2], [[1, 2, 3]], ValueError, "one value per id"),
    ],
)
def test_bad_rows_are_refused_as_numpy_refuses_them(
    ids: list[int], columns: list[list[int]], error: type[Exception], words: str
) -> None:
    as_arrays = [np.array(c, dtype=np.int64) for c in columns]
    with pytest.raises(error, match=words):
        rows(np.array(ids, dtype=np.int64), as_arrays)
    with pytest.raises(error, match=words):
        columncodec.planes_numpy(np.array(ids, dtype=np.int64), as_arrays)


@pytest.mark.parametrize(
    ("ids", "columns", "words"),
    [
        (np.array([1, 2], dtype=np.int32), [np.array([1, 2])], "ids must be a contiguous buffer of 64-bit"),
        (np.array([1, 2]), [np.array([1.0, 2.0])], "a column must be a contiguous buffer of 64-bit"),
        (np.array([1, 2]), [np.arange(4)[::2]], "a column must be a contiguous buffer"),
        (np.array([1, 2]), 7, "columns must be a sequence"),
    ],
)
def test_other_buffers_are_a_type_error_naming_the_argument(ids: Any, columns: Any, words: str) -> None:
    with pytest.raises(TypeError, match=words):
        rows(ids, columns)


def test_more_columns_than_a_segment_holds_are_refused() -> None:
    with pytest.raises(ValueError, match="at most 16 columns"):
        rows(np.array([1]), [np.array([1])] * 17)
