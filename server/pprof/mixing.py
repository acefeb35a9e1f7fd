"""A 64-bit mixing function for hashing numpy columns of integers.

Sample identities, label runs and function digests all combine several integer
columns into one 64-bit value per row, vectorised; each needs a finaliser in
which every input bit affects every output bit, so sums and products of
mixed terms do not cancel. One definition keeps them the same function.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]


def mix64(x: U64) -> U64:
    """splitmix64's finaliser, element-wise (overflow wraps, as intended)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))
