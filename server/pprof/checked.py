"""Sums of 64-bit values that cannot wrap: exact when they fit, saturated and flagged when they do not.

numpy adds int64 modulo 2^64, so two samples of 2^63-1 add up to -2 and a
flame graph would show a negative CPU time. Every sum Stackyard keeps or shows
goes through the invariant kept here:

- a profile is accepted only if, per sample type, the sum of its positive
  values and the sum of its negative values both stay within
  ``[-SAFE_MAX, SAFE_MAX]`` (:func:`signed_sums`, checked by validation). Any
  sum of any subset of its values (a stack's flat or cum value, a function's,
  the total) then fits, so nothing downstream of ingest needs checking;
- merges of many profiles (queries, rollups) add exactly (:func:`grouped_sums`)
  and see whether the result still fits. A query that would pass the range is
  refused; a rollup, which cannot refuse, stores ``±SATURATED`` instead: a value
  no accepted profile contains, so a later query that meets it knows the true
  sum was out of range and refuses exactly as the same query over the raw
  profiles does.

Exactness without a wider integer type: each value is split into its high and
low 32 bits, which are summed separately (neither sum can wrap for fewer than
2^31 values) and recombined with Python's unbounded integers only where a
range check needs them. A cheap bound (count times the largest magnitude) skips
all of it for the ordinary profile.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]

SATURATED: Final = 2**63 - 1
"""What a rollup stores for a sum past the range (negated below it): never a value of an accepted profile."""

SAFE_MAX: Final = SATURATED - 1
"""The largest magnitude a kept sum may have."""

_LOW: Final = np.int64(0xFFFF_FFFF)


def bounded(values: IntArray, count: int) -> bool:
    """True when no sum of ``count`` of these values can leave the safe range (the common case)."""
    if values.size == 0:
        return True
    largest = max(int(values.max()), -int(values.min()))
    return largest * count <= SAFE_MAX


def signed_sums(values: IntArray) -> list[tuple[int, int]]:
    """Per column of a 2-D array: (sum of its positive values, sum of its negative values), exactly."""
    if bounded(values, values.shape[0]):
        positive = np.where(values > 0, values, 0).sum(axis=0).tolist()
        negative = np.where(values < 0, values, 0).sum(axis=0).tolist()
        return list(zip(positive, negative, strict=True))
    return [
        (_exact_total(np.where(column > 0, column, 0)), _exact_total(np.where(column < 0, column, 0)))
        for column in values.T
    ]


def _exact_total(values: IntArray) -> int:
    high = int((values >> 32).sum())
    low = int((values & _LOW).sum())
    return (high << 32) + low


def fits(total: int) -> bool:
    return -SAFE_MAX <= total <= SAFE_MAX


def grouped_sums(values: IntArray, starts: npt.NDArray[np.intp]) -> tuple[IntArray, bool]:
    """``np.add.reduceat(values, starts, axis=0)`` without wrapping: sums out of range become ``±SATURATED``.

    Returns the sums and whether any had to be saturated. ``values`` is 2-D
    (rows, columns), its rows already ordered so that each group is a run
    starting at one of ``starts``.
    """
    if bounded(values, values.shape[0]):
        return np.add.reduceat(values, starts, axis=0), False
    high = np.add.reduceat(values >> 32, starts, axis=0)
    low = np.add.reduceat(values & _LOW, starts, axis=0)
    # exact = high * 2^32 + low, with low in [0, count * 2^32): carry low's excess into high.
    high += low >> 32
    low &= _LOW
    # The exact value fits in int64 exactly when high fits in 32 signed bits.
    over = high >= 2**31
    under = high < -(2**31)
    sums = (np.clip(high, -(2**31), 2**31 - 1) << 32) | low
    # SAFE_MAX is the largest kept value: the one above it (SATURATED) is reserved, and so is its negation.
    over |= sums == SATURATED
    under |= sums <= -SATURATED
    saturated = bool(over.any() or under.any())
    if saturated:
        sums = np.where(over, SATURATED, np.where(under, -SATURATED, sums))
    return sums, saturated


def clamp(total: int) -> int:
    """A Python-int sum as stored: itself when it fits, else ``±SATURATED``."""
    if total > SAFE_MAX:
        return SATURATED
    if total < -SAFE_MAX:
        return -SATURATED
    return total


def holds_saturated(values: IntArray) -> bool:
    """Whether an array read from the store carries a saturated sum (a rollup whose true sum was out of range)."""
    return bool(values.size) and bool((values >= SATURATED).any() or (values <= -SATURATED).any())
