"""Typed signatures of the filters' passes in ``_filters.c``; see :mod:`server.query.filters`."""

import numpy as np
import numpy.typing as npt

Indices = npt.NDArray[np.int32] | npt.NDArray[np.int64]  # a call tree's parents and functions: either width

def keep(
    parent: Indices,
    function: Indices,
    kept: npt.NDArray[np.bool_],
    up: npt.NDArray[np.int64] | None,
    /,
) -> tuple[bytearray, bytearray, bytearray]:
    """The tree of the kept frames of a call tree (contiguous arrays, parents first).

    ``parent``: each in [-1, its own index); ``function``: each in [0, 2**31), no two children of one node
    sharing one (as in every call tree); ``kept``: which frames stay.
    ``up``: each node's nearest kept node at or above it (itself when kept), -1 for none, or None to work it
    out; a node it names that is not kept holds no new node. Returns ``(new_of, nodes, new_parent)`` as int64
    bytes: each original node's new node (-1: none), each new node's lowest original node (ascending), and
    each new node's parent (-1: the root). ``ValueError``, before anything is made, for arrays of other
    lengths or types, or a parent, function or ``up`` out of range.
    """

def on_paths(parent: Indices, bits: npt.NDArray[np.uint8], /) -> None:
    """ORs each node's ``bits`` into its children's, from the root down, in place: afterwards bit b of a node
    is set when any node on its path from the root had it. ``parent``: each in [-1, its own index) (parents
    first); ``bits``: writable, one entry a node. ``ValueError``, before anything is written, for columns of
    other lengths or types, or a parent out of range.
    """

def kept_recursion(
    parent: Indices,
    function: Indices,
    kept: npt.NDArray[np.bool_],
    nodes: npt.NDArray[np.int64],
    /,
) -> bytearray:
    """For each of ``nodes``: whether its nearest ancestor of its own function is kept (0 when it has none), as
    one byte a node. ``parent``: each in [-1, its own index) (parents first); ``function``, ``kept``: one
    entry a node. ``ValueError``, before anything is read, for columns of other lengths or types, or a parent
    or node out of range.
    """
