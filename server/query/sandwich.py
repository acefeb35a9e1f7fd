"""A function's sandwich: its callers as an inverted tree above it, its callees as a tree below it.

Both trees come from the whole merged call tree, before any node limit
(truncating first would leave out callers whose calls were folded away), and
count each sample once per node, as ``go tool pprof`` counts its graph's nodes
and edges:

- A run of F calling itself directly is one F (pprof's graph has no F -> F edge).
- Callees: a node is a path F, X1, ..., Xk; its value is every sample whose stack
  holds that sequence somewhere below an F, counted once even when F recurses
  through other functions and the sequence occurs twice. The root is F: its value
  is F's cum and its self F's flat; its children are ``go tool pprof -peek``'s edges
  out of F.
- Callers: the same with the sequence read upwards, F, caller, caller's caller...;
  its children are pprof's edges into F. A node's self is what reaches the root of the
  stack there.

Without recursion through another function each tree adds up like a flame graph.
With it, one sample may hold F under two callers (or above two callees) and counts
once under each, as pprof's edges do: children may then add up to more than their
parent.

The trees are grown over the tree's node arrays, one pass per level of the sandwich
trees (in C: ``_sandwich.c``): a node's samples are its subtree, so "once per sample"
means counting, among the nodes that reach the same sandwich node, only those not
inside another one's subtree. Such a nested pair is reached from two Fs, one above the
other, at the same distance, and the pair one level closer to the Fs is nested too: so
only entries grown from a nested entry (at the first level: from an F below another F,
the tree's ``recursive`` flag) are checked, and of those only the ones whose frame is
recursive (the other entry's frame lies above it, with the same function), each
against the entries of the Fs above its own, walking up the chain of Fs. The checks
stop after a level or two.

With ``max_nodes`` the trees are grown only where a flame graph of ``max_nodes``
nodes can draw: a node narrower than the ``max_nodes``-th widest found so far is not
expanded (its descendants are no wider than it, so none could be drawn).
Every node that is drawn, and each of its children (what ``other`` folds), is
still computed whole, so the flame graph is the same as from the full trees.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from server.query import _sandwich
from server.query.filters import keep_frames
from server.query.tree import CallTree, as_indices

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Sandwich:
    """F's flat and cum (one number per value column), and the two trees whose root is F."""

    flat: IntArray
    cum: IntArray
    callers: CallTree
    callees: CallTree


def sandwich(tree: CallTree, function: int, max_nodes: int | None = None) -> Sandwich:
    """The sandwich of ``function`` (an id of ``tree``, whose same-name functions are already one id).

    ``max_nodes``: grow each tree only as far as a flame graph of that many nodes draws (module docstring).
    """
    columns = tree.selfs.shape[1]
    is_f = tree.function == function
    f_nodes = np.flatnonzero(is_f)
    flat = tree.selfs[f_nodes].sum(axis=0).astype(np.int64).reshape(columns)
    cum = tree.totals[f_nodes[~tree.recursive[f_nodes]]].sum(axis=0).astype(np.int64).reshape(columns)
    if f_nodes.shape[0] == 0:
        return Sandwich(flat, cum, _empty(columns), _empty(columns))
    above = tree.parent[f_nodes]
    direct = f_nodes[(above >= 0) & is_f[np.maximum(above, 0)]]  # F calling F directly
    if direct.shape[0]:
        kept = np.ones(len(tree), dtype=bool)
        kept[direct] = False
        tree = _one_frame_per_run(tree, kept)
        f_nodes = np.flatnonzero(tree.function == function)
    if max_nodes is not None and bool((tree.selfs < 0).any()):
        max_nodes = None  # with negative values a child can be wider than its parent
    at_root = tree.parent[f_nodes] < 0
    root_self = tree.totals[f_nodes[at_root]].sum(axis=0).astype(np.int64).reshape(columns)  # no F above a root
    callers, callees = _sandwich.grow(
        as_indices(tree.parent),
        as_indices(tree.function),
        np.ascontiguousarray(tree.recursive, dtype=np.bool_),
        np.ascontiguousarray(tree.selfs, dtype=np.int64),
        np.ascontiguousarray(tree.totals, dtype=np.int64),
        function,
        max_nodes or 0,
    )
    return Sandwich(flat, cum, _side(callers, root_self, cum), _side(callees, flat, cum))


def _side(grown: tuple[bytearray, bytearray, bytearray, bytearray], root_self: IntArray, total: IntArray) -> CallTree:
    """One side as the C growth returns it (its nodes level by level), with F's ``root_self`` and ``total``."""
    parents, functions, selfs, totals = grown
    columns = total.shape[0]
    parent = np.frombuffer(parents, dtype=np.int64)
    count = parent.shape[0]
    return CallTree(
        node_ids=np.arange(count, dtype=np.int64),
        parent=parent,
        function=np.frombuffer(functions, dtype=np.int64),
        recursive=np.zeros(count, dtype=bool),
        selfs=np.frombuffer(selfs, dtype=np.int64).reshape(count, columns),
        totals=np.frombuffer(totals, dtype=np.int64).reshape(count, columns),
        root_self=root_self,
        total=total,
    )


def _one_frame_per_run(tree: CallTree, kept: BoolArray) -> CallTree:
    """``tree`` with each run of F calling F directly as one F (pprof's graph has no F -> F edge).

    ``recursive`` carries over: a removed F has an F above it that stays, and nothing else is removed.
    """
    collapsed, new_of = keep_frames(tree, kept)
    recursive = np.zeros(len(collapsed), dtype=bool)
    recursive[new_of[kept]] = tree.recursive[kept]
    return replace(collapsed, recursive=recursive)


def _empty(columns: int) -> CallTree:
    none = np.zeros(0, dtype=np.int64)
    zeros = np.zeros(columns, dtype=np.int64)
    values = np.zeros((0, columns), dtype=np.int64)
    return CallTree(none, none, none, np.zeros(0, dtype=bool), values, values, zeros, zeros)
