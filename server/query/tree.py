"""A merged call tree: leaf values propagated to every ancestor, as arrays.

``self`` of a node is the value of samples whose stack ends there; ``total``
adds everything below it. Propagation runs one depth level at a time, deepest
first, with ``np.add.at``: tens of numpy calls for a tree of any width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.store.stacks import ROOT, StackTree

IntArray = npt.NDArray[np.int64]


@dataclass(slots=True)
class CallTree:
    """Nodes in id order (so parents come before children); index -1 in ``parent`` is the root."""

    node_ids: IntArray
    parent: IntArray  # index into node arrays, -1 for children of the root
    function: IntArray
    recursive: npt.NDArray[np.bool_]
    self_value: IntArray
    total_value: IntArray
    root_self: int  # samples with an empty stack
    total: int

    def __len__(self) -> int:
        return int(self.node_ids.shape[0])


def build_tree(stacks: StackTree, nodes: IntArray, values: IntArray) -> CallTree:
    """``nodes`` are leaf ids (may repeat, may include the root for empty stacks)."""
    total = int(values.sum()) if values.size else 0
    root_self = int(values[nodes == ROOT].sum()) if values.size else 0
    all_nodes = stacks.ancestors_closure(nodes) if nodes.size else np.zeros(0, dtype=np.int64)
    self_value = np.zeros(all_nodes.shape[0], dtype=np.int64)
    nonroot = nodes != ROOT
    np.add.at(self_value, np.searchsorted(all_nodes, nodes[nonroot]), values[nonroot])
    parent_ids = stacks.parent[all_nodes]
    parent = np.where(parent_ids > ROOT, np.searchsorted(all_nodes, parent_ids), -1)
    depth = stacks.depth[all_nodes]
    total_value = self_value.copy()
    if all_nodes.size:
        order = np.argsort(-depth, kind="stable")
        sorted_depth = depth[order]
        cuts = np.flatnonzero(np.diff(sorted_depth)) + 1
        for level in np.split(order, cuts):
            targets = parent[level]
            keep = targets >= 0
            np.add.at(total_value, targets[keep], total_value[level[keep]])
    return CallTree(
        node_ids=all_nodes,
        parent=parent,
        function=stacks.function[all_nodes],
        recursive=stacks.recursive[all_nodes],
        self_value=self_value,
        total_value=total_value,
        root_self=root_self,
        total=total,
    )
