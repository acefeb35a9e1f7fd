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

Everything is numpy over the tree's nodes, one pass per depth level: a node's
samples are its subtree, so "once per sample" means counting, among the nodes
that reach the same sandwich node, only those not inside another one's subtree
(each node's preorder interval tells).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.query.filters import group_keys, keep_frames, levels_of
from server.query.tree import CallTree

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Sandwich:
    """F's flat and cum (one number per value column), and the two trees whose root is F."""

    flat: IntArray
    cum: IntArray
    callers: CallTree
    callees: CallTree


def sandwich(tree: CallTree, function: int) -> Sandwich:
    """The sandwich of ``function`` (an id of ``tree``, whose same-name functions are already one id)."""
    columns = tree.selfs.shape[1]
    is_f = tree.function == function
    flat = tree.selfs[is_f].sum(axis=0).astype(np.int64).reshape(columns)
    cum = tree.totals[is_f & ~tree.recursive].sum(axis=0).astype(np.int64).reshape(columns)
    if not bool(is_f.any()):
        return Sandwich(flat, cum, _empty(columns), _empty(columns))
    parent_is_f = np.zeros(len(tree), dtype=bool)
    below = tree.parent >= 0
    parent_is_f[below] = is_f[tree.parent[below]]
    if bool((is_f & parent_is_f).any()):
        tree, _ = keep_frames(tree, ~(is_f & parent_is_f))  # F calling F directly: one frame
    levels = levels_of(tree.parent)
    tin, tout = _intervals(tree.parent, levels)
    is_f = tree.function == function
    under_f = np.zeros(len(tree), dtype=bool)  # an F strictly above
    for level in levels[1:]:
        above = tree.parent[level]
        under_f[level] = is_f[above] | under_f[above]
    f_nodes = np.flatnonzero(is_f)
    nested = under_f[f_nodes]
    return Sandwich(
        flat,
        cum,
        _callers(tree, f_nodes, nested, tin, tout, flat, cum),
        _callees(tree, f_nodes, nested, tin, tout, flat, cum),
    )


def _empty(columns: int) -> CallTree:
    none = np.zeros(0, dtype=np.int64)
    zeros = np.zeros(columns, dtype=np.int64)
    values = np.zeros((0, columns), dtype=np.int64)
    return CallTree(none, none, none, np.zeros(0, dtype=bool), values, values, zeros, zeros)


def _intervals(parent: IntArray, levels: list[IntArray]) -> tuple[IntArray, IntArray]:
    """Each node's preorder interval [tin, tout): a node's subtree is exactly the nodes whose tin lies inside."""
    n = parent.shape[0]
    size = np.ones(n, dtype=np.int64)
    for level in reversed(levels[1:]):
        np.add.at(size, parent[level], size[level])
    order = np.argsort(parent, kind="stable")  # siblings together (the root's children first)
    sizes = size[order]
    before = np.cumsum(sizes) - sizes
    grouped = parent[order]
    starts = np.flatnonzero(np.concatenate(([True], grouped[1:] != grouped[:-1])))
    ends = np.append(starts[1:], n).astype(np.int64)
    base = np.repeat(before[starts], ends - starts)
    offset = np.empty(n, dtype=np.int64)
    offset[order] = before - base  # what the earlier siblings' subtrees take
    tin = np.zeros(n, dtype=np.int64)
    for index, level in enumerate(levels):
        tin[level] = offset[level] if index == 0 else tin[parent[level]] + 1 + offset[level]
    return tin, tin + size


def _once(
    ids: IntArray, nodes: IntArray, nested: BoolArray, values: IntArray, count: int, tin: IntArray, tout: IntArray
) -> IntArray:
    """Per id, the sum of ``values`` of its nodes that are not inside another of its nodes' subtree.

    ``nested`` marks the entries whose F lies below another F: only an id one of them reaches
    can have a node inside another's subtree, so only those ids are sorted and checked.
    """
    result = np.zeros((count, values.shape[1]), dtype=np.int64)
    if ids.shape[0] == 0:
        return result
    suspect = np.zeros(count, dtype=bool)
    suspect[ids[nested]] = True
    check = suspect[ids]
    plain = ~check
    np.add.at(result, ids[plain], values[nodes[plain]])
    if not bool(check.any()):
        return result
    ids, nodes = ids[check], nodes[check]
    span = int(tout.max()) + 1
    start = ids * span + tin[nodes]
    order = np.argsort(start, kind="stable")
    ids, nodes, start = ids[order], nodes[order], start[order]
    end = start + (tout[nodes] - tin[nodes])
    reach = np.concatenate(([-1], np.maximum.accumulate(end)[:-1]))
    outer = start >= reach  # intervals nest or are disjoint: inside an earlier one means inside its reach
    np.add.at(result, ids[outer], values[nodes[outer]])
    return result


class _Interner:
    """Sandwich nodes by (parent sandwich node, function), one depth level at a time (-1 is the root, F)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.parents: list[IntArray] = []
        self.functions: list[IntArray] = []
        self.count = 0

    def add(self, above: IntArray, function: IntArray) -> IntArray:
        keys = (above + 1) * self.width + function
        first, inverse = group_keys(keys)
        self.parents.append(above[first])
        self.functions.append(function[first])
        ids: IntArray = inverse + self.count
        self.count += first.shape[0]
        return ids

    def tree(self, selfs: IntArray, totals: IntArray, root_self: IntArray, total: IntArray) -> CallTree:
        empty = np.zeros(0, dtype=np.int64)
        parent = np.concatenate(self.parents) if self.parents else empty
        return CallTree(
            node_ids=np.arange(self.count, dtype=np.int64),
            parent=parent,
            function=np.concatenate(self.functions) if self.functions else empty,
            recursive=np.zeros(self.count, dtype=bool),
            selfs=selfs,
            totals=totals,
            root_self=root_self,
            total=total,
        )


def _callees(
    tree: CallTree,
    f_nodes: IntArray,
    nested: BoolArray,
    tin: IntArray,
    tout: IntArray,
    flat: IntArray,
    cum: IntArray,
) -> CallTree:
    """Paths down from every F, merged; a path's value counts each sample that holds it once."""
    n = len(tree)
    child_order = np.argsort(tree.parent, kind="stable")
    counts = np.bincount(tree.parent + 1, minlength=n + 1)
    firsts = np.cumsum(counts) - counts  # position in child_order of each node's first child (index + 1)
    interner = _Interner(int(tree.function.max()) + 1)
    all_ids: list[IntArray] = []
    all_nodes: list[IntArray] = []
    all_nested: list[BoolArray] = []
    nodes, ids = f_nodes, np.full(f_nodes.shape[0], -1, dtype=np.int64)
    while nodes.shape[0]:
        many = counts[nodes + 1]
        pair = np.repeat(np.arange(nodes.shape[0]), many)
        within = np.arange(pair.shape[0]) - np.repeat(np.cumsum(many) - many, many)
        children = child_order[firsts[nodes + 1][pair] + within]
        ids = interner.add(ids[pair], tree.function[children])
        nodes, nested = children, nested[pair]
        all_ids.append(ids)
        all_nodes.append(nodes)
        all_nested.append(nested)
    every_id = np.concatenate(all_ids) if all_ids else np.zeros(0, dtype=np.int64)
    every_node = np.concatenate(all_nodes) if all_nodes else np.zeros(0, dtype=np.int64)
    every_nested = np.concatenate(all_nested) if all_nested else np.zeros(0, dtype=bool)
    totals = _once(every_id, every_node, every_nested, tree.totals, interner.count, tin, tout)
    selfs = np.zeros_like(totals)
    np.add.at(selfs, every_id, tree.selfs[every_node])  # a sample ends once: no double count possible
    return interner.tree(selfs, totals, flat, cum)


def _callers(
    tree: CallTree,
    f_nodes: IntArray,
    nested: BoolArray,
    tin: IntArray,
    tout: IntArray,
    flat: IntArray,
    cum: IntArray,
) -> CallTree:
    """Paths up from every F, merged; a path's value counts once each sample below an F it leads to."""
    interner = _Interner(int(tree.function.max()) + 1)
    all_ids: list[IntArray] = []
    all_sources: list[IntArray] = []
    all_nested: list[BoolArray] = []
    top_ids: list[IntArray] = []
    top_sources: list[IntArray] = []
    at_root = tree.parent[f_nodes] < 0
    columns = tree.selfs.shape[1]
    root_self = tree.totals[f_nodes[at_root]].sum(axis=0)  # no F above a root: each sample once
    sources, ids, above = f_nodes, np.full(f_nodes.shape[0], -1, dtype=np.int64), tree.parent[f_nodes]
    while True:
        alive = above >= 0
        sources, ids, above, nested = sources[alive], ids[alive], above[alive], nested[alive]
        if sources.shape[0] == 0:
            break
        ids = interner.add(ids, tree.function[above])
        all_ids.append(ids)
        all_sources.append(sources)
        all_nested.append(nested)
        above = tree.parent[above]
        ends = above < 0
        top_ids.append(ids[ends])
        top_sources.append(sources[ends])
    empty = np.zeros(0, dtype=np.int64)
    totals = _once(
        np.concatenate(all_ids) if all_ids else empty,
        np.concatenate(all_sources) if all_sources else empty,
        np.concatenate(all_nested) if all_nested else np.zeros(0, dtype=bool),
        tree.totals,
        interner.count,
        tin,
        tout,
    )
    selfs = np.zeros((interner.count, columns), dtype=np.int64)
    if top_ids:
        # A stack has one root: a path reaching it from one F per sample, never two.
        np.add.at(selfs, np.concatenate(top_ids), tree.totals[np.concatenate(top_sources)])
    return interner.tree(selfs, totals, root_self.reshape(columns), cum)
