"""Typed signatures of the call tree passes in ``_calltree.c``; see :mod:`server.query.tree` and
:mod:`server.query.flamegraph`."""

import numpy as np
import numpy.typing as npt

Indices = npt.NDArray[np.int32] | npt.NDArray[np.int64]  # a call tree's parents and functions: either width

def sum_up(totals: npt.NDArray[np.int64], parent: Indices, /) -> None:
    """Add each node's row of ``totals`` (nodes, columns) to its parent's (``parent``: an index, -1 for none,
    below the node's own), children before parents, in one pass from the last node; sums wrap at 64 bits, as
    numpy's do. ``ValueError``, with nothing changed, for a parent index out of range or totals of another
    length."""

def fold(
    keep: npt.NDArray[np.bool_],
    parent: Indices,
    totals: npt.NDArray[np.int64],
    kept: npt.NDArray[np.int64],
    kept_parent: npt.NDArray[np.int64],
    sums: npt.NDArray[np.int64],
    /,
) -> None:
    """A call tree pruned to the nodes ``keep`` flags, in one pass: the drawn nodes' indices, their parents among
    the drawn (-1: the root or a parent not drawn), and into ``sums`` (drawn + 1 rows, zeroed) the totals of the
    nodes not drawn whose parent is drawn (row p + 1) or the root (row 0). ``ValueError`` for arrays of other
    lengths or a parent index not in ``[-1, the node's own)``."""

def widest(width: npt.NDArray[np.int64], count: int, out: npt.NDArray[np.bool_], /) -> None:
    """Flags in ``out`` (zeroed, one a node) the ``count`` nodes of greatest ``width``, ties going to the lower
    index: the first ``count`` of a sort by (-width, index). ``ValueError`` for arrays of other lengths or a
    negative count."""
