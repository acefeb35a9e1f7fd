"""Typed signature of ``_planes.c``: the byte planes of :mod:`server.store.columncodec`'s segments."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

def rows(ids: npt.NDArray[np.int64], columns: Sequence[npt.NDArray[np.int64]], /) -> tuple[bytes, bytes]:
    """The descriptor bytes (one a column, the ids' first) and the byte planes of rows ``ids[i]`` with
    ``columns[c][i]``; ``ValueError`` for ids that are not positive and increasing or a column that is not one
    value an id, ``TypeError`` for an argument that is not a contiguous int64 buffer."""
