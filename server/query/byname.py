"""A call tree's functions merged by name, as ``go tool pprof`` merges them at function granularity.

The store keeps a function per (name, system name, file), which line-level
views need; pprof's function granularity drops the file, so JavaScript's
``(anonymous)`` functions of several files, or one C++ name in two files,
are one node. Their cum counts once per sample, as for recursion, so a node
is ``recursive`` here when an ancestor has the same *name*, not only the
same id. Only nodes whose name has several ids are walked.

Siblings that end up with one id are then one node, so a flame graph draws
one box per name under a parent, as pprof's function-granularity tree does.
Merged siblings have the same ancestors, so their ``recursive`` agrees.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from server.query.grouping import distinct, distinct_inverse, groups
from server.query.tree import CallTree

IntArray = npt.NDArray[np.int64]
#: A (parent, function) pair packs into one int64 as ``(parent + 1) << _FRAME_BITS | function`` while both fit.
_FRAME_BITS = 31
_FRAME_LIMIT = 1 << _FRAME_BITS
_PARENT_LIMIT = 1 << 31


def function_ids(tree: CallTree) -> list[int]:
    """The distinct function ids of ``tree``, in linear time (a mark per id, not a sort of every node)."""
    if tree.function.shape[0] == 0:
        return []
    seen = np.zeros(int(tree.function.max()) + 1, dtype=bool)
    seen[tree.function] = True
    return np.flatnonzero(seen).tolist()


def by_name(tree: CallTree, names: dict[int, str]) -> CallTree:
    """``tree`` with each function id replaced by the smallest id of its name and same-name siblings merged."""
    if len(set(names.values())) == len(names):  # the common case (Go): no name has two ids, nothing to walk
        return tree
    renamed = _canonical(tree, names)
    return tree if renamed is tree else _merge_siblings(renamed)


def _canonical(tree: CallTree, names: dict[int, str]) -> CallTree:
    """``tree`` with each function id replaced by the smallest id of its name, ``recursive`` recomputed."""
    ids, at = distinct_inverse(tree.function)
    first: dict[str, int] = {}
    canonical = np.array([first.setdefault(names.get(f, "?"), f) for f in ids.tolist()], dtype=np.int64)
    if bool((canonical == ids).all()):
        return tree
    function = canonical[at]
    shared_ids = distinct(canonical[canonical != ids])
    walk = np.flatnonzero(np.isin(function, shared_ids) & ~tree.recursive)
    recursive = tree.recursive.copy()
    hit = np.zeros(walk.shape[0], dtype=bool)
    ancestor = tree.parent[walk]
    while bool((ancestor >= 0).any()):
        live = ancestor >= 0
        safe = np.maximum(ancestor, 0)
        hit |= live & (function[safe] == function[walk])
        ancestor = np.where(live, tree.parent[safe], -1)
    recursive[walk] = hit
    return replace(tree, function=function, recursive=recursive)


def _merge_siblings(tree: CallTree) -> CallTree:
    """Nodes with the same (merged) parent and function folded into the first of them.

    Merging two parents can make their children siblings, so this repeats
    until nothing changes; each round is a handful of numpy calls. A group's
    representative is its smallest index, which keeps parents before children.
    """
    n = len(tree)
    rep = np.arange(n, dtype=np.int64)
    # (parent, function) pairs as one integer each when they fit: numpy's unique of rows views them as
    # opaque 16-byte records and sorts those with a stable sort, several times slower than grouping
    # integers (:mod:`server.query.grouping`; a 500,000-node tree of high-churn line frames).
    packed = n < _PARENT_LIMIT and (
        n == 0 or (int(tree.function.min()) >= 0 and int(tree.function.max()) < _FRAME_LIMIT)
    )
    while True:
        parent = np.where(tree.parent >= 0, rep[np.maximum(tree.parent, 0)], -1)
        if packed:
            keys = ((parent + 1) << _FRAME_BITS) | tree.function
            first, inverse = groups(keys)
        else:
            rows = np.stack([parent, tree.function], axis=1)
            _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
        merged = first[inverse.reshape(-1)].astype(np.int64)
        if bool((merged == rep).all()):
            break
        rep = merged
    representative = rep == np.arange(n)  # a group's smallest index is its own representative
    if bool(representative.all()):
        return tree
    kept = np.flatnonzero(representative)
    position = (np.cumsum(representative) - 1)[rep]
    selfs = np.zeros((kept.shape[0], tree.selfs.shape[1]), dtype=np.int64)
    totals = np.zeros_like(selfs)
    np.add.at(selfs, position, tree.selfs)
    np.add.at(totals, position, tree.totals)
    kept_parent = tree.parent[kept]
    parent = np.where(kept_parent >= 0, position[np.maximum(kept_parent, 0)], -1)
    return replace(
        tree,
        node_ids=None if tree.node_ids is None else tree.node_ids[kept],
        parent=parent,
        function=tree.function[kept],
        recursive=tree.recursive[kept],
        selfs=selfs,
        totals=totals,
    )
