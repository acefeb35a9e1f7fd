"""The merged call tree as compact flame graph JSON (format in docs/api.md).

Each depth level is one flat list of 4 integers per node: the gap since the
previous node on that level ends, the node's total, its self value and the
index of its name in ``names``. Children are ordered by name, so the same
data always draws the same picture. When the tree has more than ``max_nodes``
nodes, the ones whose totals are below the ``max_nodes``-th largest fold into
one ``other`` child of their parent, so huge trees stay small on the wire.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from server.query.tree import CallTree

OTHER = "other"


def flamegraph(tree: CallTree, names: dict[int, str], max_nodes: int, divisor: int = 1) -> dict[str, object]:
    n = len(tree)
    keep = np.ones(n, dtype=bool)
    truncated = False
    if n > max_nodes:
        threshold = np.partition(tree.total_value, n - max_nodes)[n - max_nodes]
        keep = tree.total_value >= threshold
        truncated = True
    children: dict[int, list[int]] = defaultdict(list)
    other: dict[int, int] = defaultdict(int)
    parents = tree.parent.tolist()
    totals = tree.total_value.tolist()
    selfs = tree.self_value.tolist()
    functions = tree.function.tolist()
    kept = keep.tolist()
    for node in range(n):
        if kept[node]:
            children[parents[node]].append(node)
        elif parents[node] == -1 or kept[parents[node]]:
            other[parents[node]] += totals[node]
    for siblings in children.values():
        siblings.sort(key=lambda i: names.get(functions[i], ""))

    name_index: dict[str, int] = {"total": 0}
    levels: list[list[float]] = []

    def name_of(label: str) -> int:
        found = name_index.get(label)
        if found is None:
            found = name_index[label] = len(name_index)
        return found

    def scale(value: float) -> float:
        return value / divisor if divisor != 1 else value

    level_end: list[float] = []

    def emit(depth: int, start: float, total: float, self_value: float, name: int) -> None:
        while len(levels) <= depth:
            levels.append([])
            level_end.append(0)
        levels[depth].extend((start - level_end[depth], total, self_value, name))
        level_end[depth] = start + total

    emit(0, 0, scale(tree.total), scale(tree.root_self), 0)
    max_self = scale(tree.root_self)
    # Iterative depth-first walk: (node index, depth, x offset); -1 is the root.
    stack: list[tuple[int, int, float]] = [(-1, 0, 0.0)]
    while stack:
        node, depth, x = stack.pop()
        offset = x  # children start at the parent's left edge; self time is the gap at the right
        placed: list[tuple[int, int, float]] = []
        for child in children.get(node, []):
            total = scale(totals[child])
            emit(depth + 1, offset, total, scale(selfs[child]), name_of(names.get(functions[child], "?")))
            max_self = max(max_self, scale(selfs[child]))
            placed.append((child, depth + 1, offset))
            offset += total
        if other.get(node):
            folded = scale(other[node])
            emit(depth + 1, offset, folded, folded, name_of(OTHER))
        stack.extend(reversed(placed))
    return {
        "names": list(name_index),
        "levels": levels,
        "total": scale(tree.total),
        "max_self": max_self,
        "nodes": sum(len(level) // 4 for level in levels),
        "truncated": truncated,
    }
