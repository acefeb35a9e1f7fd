"""A merged call tree: leaf values propagated to every ancestor, as arrays.

``selfs`` of a node is the value of samples whose stack ends there; ``totals``
adds everything below it. Values may have several columns (a diff carries
the base and the comparison side by side over one set of nodes).
Propagation is one pass in C (``_calltree.c``) from the last node to the first (nodes are in
id order, so every child comes after its parent); no step costs more than a
pass over the nodes the query's leaves reach (plus a flag per stored node).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from server.query._calltree import sum_up
from server.store.stacks import ROOT, StackTree

IntArray = npt.NDArray[np.int64]
#: A call tree's parent and function indices. int32 in a tree gathered from the store (:func:`build_tree`): its
#: positions and frames are below 2**31, and 4 bytes a node where int64 took 8 was 137 MB of a churny day's 17 M-node
#: flame graph. int64 in trees the filters, the sandwich and the line views make. The C passes read either.
Indices = npt.NDArray[np.int32] | npt.NDArray[np.int64]


def as_indices(values: npt.NDArray[np.integer[Any]]) -> Indices:
    """``values`` as the C passes read indices: int32 or int64 and contiguous, with no copy when so already."""
    if values.dtype in (np.int32, np.int64) and values.flags.c_contiguous:
        return values  # type: ignore[return-value]
    return np.ascontiguousarray(values, dtype=np.int64)


def sum_totals(totals: IntArray, parent: Indices) -> None:
    """Add each node's row of ``totals`` (nodes in id order, a row of columns each) to its parent's, children
    first: ``parent`` holds each node's parent's index in the same order, -1 for the root's children. In id
    order every child comes after its parent, so this is one pass from the end (in C); sums wrap at 64 bits,
    as numpy's do."""
    sum_up(totals, as_indices(parent))


@dataclass(slots=True)
class CallTree:
    """Nodes in id order (so parents come before children); index -1 in ``parent`` is the root."""

    #: The stored node of each node; None unless asked for (``build_tree(..., node_ids=True)``): only an export
    #: reads them, and they were 136 MB of a churny day's 17 M-node flame graph.
    node_ids: IntArray | None
    parent: Indices  # index into node arrays, -1 for children of the root
    function: Indices
    recursive: npt.NDArray[np.bool_]
    selfs: IntArray  # (nodes, columns)
    totals: IntArray  # (nodes, columns)
    root_self: IntArray  # (columns,): samples with an empty stack
    total: IntArray  # (columns,)

    def __len__(self) -> int:
        return int(self.parent.shape[0])

    @property
    def self_value(self) -> IntArray:
        column: IntArray = self.selfs[:, 0]
        return column

    @property
    def total_value(self) -> IntArray:
        column: IntArray = self.totals[:, 0]
        return column


def build_tree(stacks: StackTree, nodes: IntArray, values: IntArray, *, node_ids: bool = False) -> CallTree:
    """``nodes`` are leaf ids (may repeat, may include the root for empty stacks); ``values`` 1-D or (rows, columns);
    ``node_ids``: keep each node's stored id (an export maps stored stacks to the tree's nodes by them).

    Linear in the nodes the leaves reach, with no sort of them: the closure is
    marked on a flag per stored node (each ancestor visited once), positions are
    a running count of the flags (node ids are sorted by construction), and
    totals are summed up the tree in one pass from the last node. Values stay
    integers throughout (exact past 2**53).
    """
    matrix = values.reshape(-1, 1) if values.ndim == 1 else values
    columns = matrix.shape[1]
    total = matrix.sum(axis=0).astype(np.int64)
    nonroot = nodes != ROOT
    root_self = matrix[~nonroot].sum(axis=0).astype(np.int64)
    leaves = nodes[nonroot]
    if leaves.size:
        stacks.ensure(leaves)
    all_nodes, parent, function, recursive, position = stacks.gather(stacks.closure_mask(leaves), with_ids=node_ids)
    selfs = np.zeros((parent.shape[0], columns), dtype=np.int64)
    np.add.at(selfs, position[leaves], matrix[nonroot])
    del position  # 4 bytes a stored node (a churny day's 17 M: 69 MB), not held while the totals are made
    totals = selfs.copy()
    sum_totals(totals, parent)  # in id order a child comes after its parent: one pass from the end
    return CallTree(
        node_ids=all_nodes,
        parent=parent,
        function=function,
        recursive=recursive,
        selfs=selfs,
        totals=totals,
        root_self=root_self,
        total=total,
    )
