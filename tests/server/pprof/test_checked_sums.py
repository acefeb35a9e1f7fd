"""The exact sums behind the 64-bit guarantees, against Python's unbounded integers."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from server.pprof.checked import SAFE_MAX, SATURATED, clamp, grouped_sums, holds_saturated, signed_sums

INT64 = st.integers(-(2**63), 2**63 - 1)
# Mostly extreme values, so the sums that matter (near and past the range) come up often.
VALUES = st.one_of(INT64, st.sampled_from([2**63 - 1, -(2**63), 2**62, -(2**62), 5 * 10**18, -1, 0, 1]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(VALUES, min_size=2, max_size=2), min_size=1, max_size=40))
def test_signed_sums_are_exact(rows: list[list[int]]) -> None:
    values = np.array(rows, dtype=np.int64)
    expected = [
        (sum(v for v in column if v > 0), sum(v for v in column if v < 0)) for column in zip(*rows, strict=True)
    ]
    assert signed_sums(values) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(VALUES, min_size=1, max_size=60), st.data())
def test_grouped_sums_are_exact_or_saturated(values: list[int], data: st.DataObject) -> None:
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(values) - 1), max_size=6)))) if len(values) > 1 else []
    starts = np.array([0, *cuts], dtype=np.intp)
    sums, saturated = grouped_sums(np.array(values, dtype=np.int64).reshape(-1, 1), starts)
    bounds = [*cuts, len(values)]
    exact = [sum(values[start:end]) for start, end in zip([0, *cuts], bounds, strict=True)]
    assert sums[:, 0].tolist() == [clamp(total) for total in exact]
    assert saturated == any(not -SAFE_MAX <= total <= SAFE_MAX for total in exact)


def test_the_probes_two_maxima() -> None:
    """Two samples of 2^63-1: numpy says -2; here the sum is known to be out of range."""
    values = np.array([[2**63 - 1], [2**63 - 1]], dtype=np.int64)
    assert int(values.sum()) == -2
    assert signed_sums(values) == [(2**64 - 2, 0)]
    sums, saturated = grouped_sums(values, np.array([0], dtype=np.intp))
    assert saturated and sums.tolist() == [[SATURATED]]
    assert holds_saturated(sums) and not holds_saturated(np.array([[SAFE_MAX]], dtype=np.int64))
