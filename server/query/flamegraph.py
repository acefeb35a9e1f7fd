"""The merged call tree as compact flame graph JSON (format in docs/api.md).

Each depth level is one flat list of numbers per node: the gap since the
previous node on that level ends, the node's value columns (total and self;
for a diff, the base's then the comparison's) and the index of its name in
``names``. Children are ordered by name, so the same data always draws the
same picture. When the tree has more than ``max_nodes`` nodes, all but the
``max_nodes`` widest fold into one ``other`` child of their parent, so huge
trees stay small on the wire.

Two options serve Pyroscope's encoding (:mod:`server.pyroscope.flame`):
``per_side`` lays out each value column on its own axis, so a diff's entries
are ``[gap, total, self]`` per side then the name, each gap measured on its
side; ``drop_empty`` leaves out nodes whose every value is zero, which a
reader that finds parents by position could not place.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from server.query.tree import CallTree

OTHER = "other"


@dataclass(frozen=True, slots=True)
class FlameGraph:
    """The encoded levels and what a viewer needs beside them (the format in docs/api.md).

    Numbers are ``int`` when whole (merges are sums, exact past 2**53) and ``float`` under ``avg``;
    ``total`` is one number per value column: a diff has ``[base, comparison]``.
    """

    names: list[str]
    levels: list[list[float]]
    total: float | list[float]
    max_self: float
    nodes: int
    truncated: bool

    @property
    def side_totals(self) -> list[float]:
        """``total`` as a list: one number per value column."""
        return self.total if isinstance(self.total, list) else [self.total]


def flamegraph(
    tree: CallTree,
    names: dict[int, str],
    max_nodes: int,
    divisor: int = 1,
    per_side: bool = False,
    drop_empty: bool = False,
) -> FlameGraph:
    """One value column: entries are ``[gap, total, self, name]``; with two (a diff),
    ``[gap, base_total, base_self, total, self, name]`` and widths are base + comparison,
    or with ``per_side`` ``[base_gap, base_total, base_self, gap, total, self, name]``."""
    columns = tree.totals.shape[1] if tree.totals.ndim == 2 else 1
    sides = columns if per_side else 1
    n = len(tree)
    width = tree.totals.sum(axis=1) if n else np.zeros(0, dtype=np.int64)
    # With no negative value, a node whose values are all zero has only such nodes below it,
    # so leaving them out keeps every kept node's parent.
    empty = drop_empty and n > 0 and not bool((tree.selfs < 0).any())
    keep = np.any(tree.totals != 0, axis=1) if empty else np.ones(n, dtype=bool)
    truncated = False
    if int(keep.sum()) > max_nodes:
        # The max_nodes widest nodes, ties going to the lower index: nodes are in id order and a
        # parent's id is below its children's, so a kept node's ancestors are always kept too.
        order = np.lexsort((np.arange(n), -width))[:max_nodes]
        widest = np.zeros(n, dtype=bool)
        widest[order] = True
        keep &= widest
        truncated = True
    # Decide in numpy, convert only what is sent: a week's tree has tens of thousands of nodes
    # and Python lists for all of them cost more than the rest of the query (and set off GCs).
    kept_nodes = np.flatnonzero(keep)
    parent = tree.parent
    folded_nodes = np.flatnonzero(~keep & ((parent < 0) | keep[np.maximum(parent, 0)]))
    folded_sums = np.zeros((n + 1, columns), dtype=np.int64)  # row p + 1 holds node p's "other"; row 0 the root's
    np.add.at(folded_sums, parent[folded_nodes] + 1, tree.totals[folded_nodes])
    other = {int(row) - 1: folded_sums[row].tolist() for row in np.unique(parent[folded_nodes] + 1).tolist()}
    index_of = {int(node): position for position, node in enumerate(kept_nodes.tolist())}
    parents = [index_of.get(p, -1) if p >= 0 else -1 for p in parent[kept_nodes].tolist()]
    totals = tree.totals[kept_nodes].tolist()
    selfs = tree.selfs[kept_nodes].tolist()
    widths = width[kept_nodes].tolist()
    functions = tree.function[kept_nodes].tolist()
    other = {(index_of[node] if node >= 0 else -1): sums for node, sums in other.items()}
    children: dict[int, list[int]] = defaultdict(list)
    for position, parent_position in enumerate(parents):
        children[parent_position].append(position)
    for siblings in children.values():
        siblings.sort(key=lambda i: names.get(functions[i], ""))

    name_index: dict[str, int] = {"total": 0}
    levels: list[list[float]] = []
    level_end: list[list[float]] = []

    def name_of(label: str) -> int:
        found = name_index.get(label)
        if found is None:
            found = name_index[label] = len(name_index)
        return found

    # Whole numbers stay integers (exact past 2**53, where a week of a fleet's CPU nanoseconds lies).
    zero: float = 0 if divisor == 1 else 0.0

    def scale(value: float) -> float:
        return value / divisor if divisor != 1 else value

    def emit(depth: int, starts: list[float], spans: list[float], values: list[float], name: int) -> None:
        """``values`` are (total, self) per column; ``starts`` and ``spans`` one per side."""
        while len(levels) <= depth:
            levels.append([])
            level_end.append([zero] * sides)
        ends = level_end[depth]
        row = levels[depth]
        if per_side:
            for c in range(columns):
                row.extend((starts[c] - ends[c], values[2 * c], values[2 * c + 1]))
                ends[c] = starts[c] + spans[c]
        else:
            row.extend((starts[0] - ends[0], *values))
            ends[0] = starts[0] + spans[0]
        row.append(name)

    def entry(total: list[int], self_: list[int]) -> list[float]:
        return [v for c in range(columns) for v in (scale(total[c]), scale(self_[c]))]

    def spans_of(total: list[int]) -> list[float]:
        return [scale(v) for v in total] if per_side else [scale(sum(total))]

    root_total = [int(v) for v in tree.total]
    root_self = [int(v) for v in tree.root_self]
    emit(0, [zero] * sides, spans_of(root_total), entry(root_total, root_self), 0)
    max_self = max([scale(v) for v in root_self] + [scale(v) for row in selfs for v in row] + [0])
    # Iterative depth-first walk: (node index, depth, x offset per side); -1 is the root.
    stack: list[tuple[int, int, list[float]]] = [(-1, 0, [zero] * sides)]
    while stack:
        node, depth, x = stack.pop()
        offset = list(x)  # children start at the parent's left edge; self is the gap at the right
        placed: list[tuple[int, int, list[float]]] = []
        for child in children.get(node, []):
            spans = spans_of(totals[child]) if per_side else [scale(widths[child])]
            emit(
                depth + 1, offset, spans, entry(totals[child], selfs[child]), name_of(names.get(functions[child], "?"))
            )
            placed.append((child, depth + 1, offset))
            offset = [start + span for start, span in zip(offset, spans, strict=True)]
        folded_values = other.get(node)
        if folded_values and any(folded_values):
            emit(depth + 1, offset, spans_of(folded_values), entry(folded_values, folded_values), name_of(OTHER))
        stack.extend(reversed(placed))
    per_node = (3 * columns + 1) if per_side else (2 * columns + 2)
    return FlameGraph(
        names=list(name_index),
        levels=levels,
        total=scale(root_total[0]) if columns == 1 else [scale(v) for v in root_total],
        max_self=max_self,
        nodes=sum(len(level) // per_node for level in levels),
        truncated=truncated,
    )
