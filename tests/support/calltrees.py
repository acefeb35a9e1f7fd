"""Random call trees for property tests of code that works on a tree's node arrays (filters, sandwich)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from server.query.tree import CallTree


def random_tree(draw: st.DrawFn, max_size: int, max_self: int) -> CallTree:
    """A call tree with parents before children and distinct functions among siblings.

    Only four function names, so the same name recurs often along a path and among cousins (what
    makes merges cascade and recursion nest). ``recursive`` is set as :func:`build_tree` sets it:
    the node's function appears above it on its path.
    """
    size = draw(st.integers(1, max_size))
    parent: list[int] = []
    function: list[int] = []
    taken: set[tuple[int, int]] = set()
    for _ in range(size):
        above = draw(st.integers(-1, len(parent) - 1))
        name = draw(st.integers(0, 3))
        if (above, name) in taken:
            continue
        taken.add((above, name))
        parent.append(above)
        function.append(name)
    n = len(parent)
    selfs = np.array(draw(st.lists(st.integers(0, max_self), min_size=n, max_size=n)), dtype=np.int64).reshape(-1, 1)
    totals = selfs.copy()
    for index in reversed(range(n)):
        if parent[index] >= 0:
            totals[parent[index]] += totals[index]
    recursive = np.zeros(n, dtype=bool)
    for index in range(n):
        above = parent[index]
        while above >= 0 and not recursive[index]:
            recursive[index] = function[above] == function[index]
            above = parent[above]
    return CallTree(
        node_ids=np.arange(n, dtype=np.int64),
        parent=np.array(parent, dtype=np.int64),
        function=np.array(function, dtype=np.int64),
        recursive=recursive,
        selfs=selfs,
        totals=totals,
        root_self=np.zeros(1, dtype=np.int64),
        total=totals[np.array(parent) < 0].sum(axis=0).reshape(1),
    )
