"""A call tree's functions merged by name, as ``go tool pprof`` merges them at function granularity.

The store keeps a function per (name, system name, file), which line-level
views need; pprof's function granularity drops the file, so JavaScript's
``(anonymous)`` functions of several files, or one C++ name in two files,
are one node. Their cum counts once per sample, as for recursion, so a node
is ``recursive`` here when an ancestor has the same *name*, not only the
same id. Only nodes whose name has several ids are walked.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from server.query.tree import CallTree

IntArray = npt.NDArray[np.int64]


def by_name(tree: CallTree, names: dict[int, str]) -> CallTree:
    """``tree`` with each function id replaced by the smallest id of its name, ``recursive`` recomputed."""
    ids = np.unique(tree.function)
    first: dict[str, int] = {}
    canonical = np.array([first.setdefault(names.get(f, "?"), f) for f in ids.tolist()], dtype=np.int64)
    if bool((canonical == ids).all()):
        return tree
    function = canonical[np.searchsorted(ids, tree.function)]
    shared_ids = np.unique(canonical[canonical != ids])
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
