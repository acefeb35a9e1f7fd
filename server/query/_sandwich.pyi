"""Typed signature of the sandwich's growth in ``_sandwich.c``; see :mod:`server.query.sandwich`."""

from typing import TypeAlias

import numpy as np
import numpy.typing as npt

Indices = npt.NDArray[np.int32] | npt.NDArray[np.int64]  # a call tree's parents and functions: either width

Side: TypeAlias = tuple[bytearray, bytearray, bytearray, bytearray]

def grow(
    parent: Indices,
    function: Indices,
    recursive: npt.NDArray[np.bool_],
    selfs: npt.NDArray[np.int64],
    totals: npt.NDArray[np.int64],
    f: int,
    max_nodes: int,
    /,
) -> tuple[Side, Side]:
    """The two trees of the sandwich of function id ``f`` over a call tree: ``(callers, callees)``.

    The tree's arrays are contiguous: ``parent`` (each in [-1, its own index): parents first), ``function``
    (each in [0, 2**31)), ``recursive``, and ``selfs`` and ``totals`` of (nodes, columns), fewer than 2**31
    nodes. Nodes are grown only where a flame graph of ``max_nodes`` nodes draws (0: all): a node narrower
    than the ``max_nodes``-th widest found so far is not grown. Each side is ``(parents, functions, selfs,
    totals)`` as int64 bytes: the sandwich nodes without their root F, level by level, parents as indices
    (-1: F).
    ``ValueError``, before anything is grown, for arrays of other lengths or types, or a parent or function
    out of range.
    """
