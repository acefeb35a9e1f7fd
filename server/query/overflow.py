"""Refusing a query whose sums would pass the 64-bit range, before numpy wraps them.

Each accepted profile's values add up within 64 bits (see
:mod:`server.pprof.checked`), but a query adds up many profiles: a fleet's
year of CPU nanoseconds can pass 2^63. numpy would wrap such a sum to a
negative number without a word, so every query that adds values up watches
what it adds: :class:`SumGuard` keeps the sum of the absolute values read so
far (in floating point, whose error is far below the margin kept), which
bounds every sum made from them (a stack's flat or cum value, a function's,
the total), and refuses with a 422 once it could pass the range. A rollup
whose own sum passed the range stored ``±SATURATED`` (a value no accepted
profile holds), which alone passes the bound: a query over it is refused just
as the same query over the raw profiles is.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from server.errors import ValueOverflow
from server.pprof.checked import SAFE_MAX

#: What the absolute values may add up to: the range, less a margin far above floating-point error.
BOUND: Final = SAFE_MAX * (1 - 2**-20)


def magnitude(values: npt.NDArray[np.int64]) -> float:
    """The sum of the absolute values, in floating point (exact enough for a bound; no int64 wrap)."""
    return float(np.abs(values, dtype=np.float64).sum()) if values.size else 0.0


class SumGuard:
    """The running magnitude of what one sum is made of; :meth:`add` raises past :data:`BOUND`."""

    def __init__(self, sample_type: str) -> None:
        self.sample_type = sample_type
        self.total = 0.0

    def add(self, values: npt.NDArray[np.int64]) -> None:
        self.total += magnitude(values)
        if self.total > BOUND:
            raise overflow(self.sample_type)


def overflow(sample_type: str | None) -> ValueOverflow:
    values = f"the {sample_type} values" if sample_type else "the values"
    return ValueOverflow(
        f"{values} selected add up past the 64-bit range (more than {SAFE_MAX}); narrow the time range or the selector"
    )
