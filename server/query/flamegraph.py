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

Two steps: :func:`prune` decides which nodes are drawn (and what folds into
``other``) in numpy, and :func:`encode_levels` lays the drawn ones out level
by level.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.query.tree import CallTree

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

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
    return encode_levels(tree, prune(tree, names, max_nodes, drop_empty), names, divisor, per_side)


@dataclass(slots=True)
class Pruned:
    """The nodes a flame graph draws, by position (-1 is the root), as the Python values it sends."""

    totals: list[list[int]]  # per drawn node, one total per value column
    selfs: list[list[int]]
    widths: list[int]  # the sum of a node's totals: its width when the columns share one axis
    functions: list[int]
    children: dict[int, list[int]]  # drawn children of a position, ordered by name
    other: dict[int, list[int]]  # per position, the totals of its children folded into "other"
    truncated: bool  # whether any node was folded for ``max_nodes``


def prune(tree: CallTree, names: dict[int, str], max_nodes: int, drop_empty: bool = False) -> Pruned:
    """The nodes drawn: the ``max_nodes`` widest (of the non-empty ones, with ``drop_empty``).

    Every node left out whose parent is drawn folds into that parent's ``other``.

    Decided in numpy, converted only for what is sent: a week's tree has tens of
    thousands of nodes, and Python lists for all of them cost more than the rest
    of the query (and set off garbage collections).
    """
    n = len(tree)
    width = tree.totals.sum(axis=1) if n else np.zeros(0, dtype=np.int64)
    keep, truncated = _kept(tree, width, max_nodes, drop_empty)
    kept_nodes = np.flatnonzero(keep)
    parent = tree.parent
    index_of = {int(node): position for position, node in enumerate(kept_nodes.tolist())}
    parents = [index_of.get(p, -1) if p >= 0 else -1 for p in parent[kept_nodes].tolist()]
    functions = tree.function[kept_nodes].tolist()
    children: dict[int, list[int]] = defaultdict(list)
    for position, parent_position in enumerate(parents):
        children[parent_position].append(position)
    for siblings in children.values():
        siblings.sort(key=lambda i: names.get(functions[i], ""))
    return Pruned(
        totals=tree.totals[kept_nodes].tolist(),
        selfs=tree.selfs[kept_nodes].tolist(),
        widths=width[kept_nodes].tolist(),
        functions=functions,
        children=children,
        other=_folded(tree, keep, index_of),
        truncated=truncated,
    )


def _kept(tree: CallTree, width: IntArray, max_nodes: int, drop_empty: bool) -> tuple[BoolArray, bool]:
    """Which nodes are drawn, and whether ``max_nodes`` left some out."""
    n = len(tree)
    # With no negative value, a node whose values are all zero has only such nodes below it,
    # so leaving them out keeps every kept node's parent.
    empty = drop_empty and n > 0 and not bool((tree.selfs < 0).any())
    keep = np.any(tree.totals != 0, axis=1) if empty else np.ones(n, dtype=bool)
    if int(keep.sum()) <= max_nodes:
        return keep, False
    # The max_nodes widest nodes, ties going to the lower index: nodes are in id order and a
    # parent's id is below its children's, so a kept node's ancestors are always kept too.
    return keep & _widest(width, max_nodes), True


def _widest(width: IntArray, count: int) -> BoolArray:
    """The ``count`` widest nodes, ties to the lower index: the first ``count`` of a sort by (-width, index),
    found by a linear-time selection of the count-th width (a week's tree has a million nodes; a sort of
    all of them to keep 2,048 cost more than the rest of the flame graph)."""
    n = width.shape[0]
    widest = np.zeros(n, dtype=bool)
    if count <= 0:
        return widest
    if count >= n:
        widest[:] = True
        return widest
    negated = -width
    cut = np.partition(negated, count - 1)[count - 1]  # the count-th smallest of -width
    widest[negated < cut] = True
    ties = np.flatnonzero(negated == cut)[: count - int(widest.sum())]
    widest[ties] = True
    return widest


def _folded(tree: CallTree, keep: BoolArray, index_of: dict[int, int]) -> dict[int, list[int]]:
    """Per drawn position (-1: the root), the summed totals of its children left out."""
    n = len(tree)
    columns = tree.totals.shape[1] if tree.totals.ndim == 2 else 1
    parent = tree.parent
    folded_nodes = np.flatnonzero(~keep & ((parent < 0) | keep[np.maximum(parent, 0)]))
    sums = np.zeros((n + 1, columns), dtype=np.int64)  # row p + 1 holds node p's "other"; row 0 the root's
    np.add.at(sums, parent[folded_nodes] + 1, tree.totals[folded_nodes])
    rows = np.unique(parent[folded_nodes] + 1)
    values = sums[rows].tolist()  # one conversion, not one per row
    return {(index_of[row - 1] if row > 0 else -1): value for row, value in zip(rows.tolist(), values, strict=True)}


def _scaler(divisor: int) -> Callable[[float], float]:
    """Values as sent: divided by ``divisor``; whole numbers stay integers when it is 1
    (exact past 2**53, where a week of a fleet's CPU nanoseconds lies)."""
    if divisor == 1:
        return lambda value: value
    return lambda value: value / divisor


class _Levels:
    """The flat per-depth rows being written, the names they index, and where each row's last node ends."""

    __slots__ = ("columns", "ends", "names", "per_side", "rows", "scale", "sides", "zero")

    def __init__(self, columns: int, per_side: bool, divisor: int) -> None:
        self.columns = columns
        self.per_side = per_side
        self.scale = _scaler(divisor)
        self.zero: float = 0 if divisor == 1 else 0.0
        self.sides = columns if per_side else 1
        self.names: dict[str, int] = {"total": 0}
        self.rows: list[list[float]] = []
        self.ends: list[list[float]] = []

    def name(self, label: str) -> int:
        found = self.names.get(label)
        if found is None:
            found = self.names[label] = len(self.names)
        return found

    def entry(self, total: list[int], self_: list[int]) -> list[float]:
        """(total, self) per column, scaled."""
        scale = self.scale
        return [v for c in range(self.columns) for v in (scale(total[c]), scale(self_[c]))]

    def spans(self, total: list[int]) -> list[float]:
        """A node's width on each side's axis."""
        return [self.scale(v) for v in total] if self.per_side else [self.scale(sum(total))]

    def emit(self, depth: int, starts: list[float], spans: list[float], values: list[float], name: int) -> None:
        """``values`` are (total, self) per column; ``starts`` and ``spans`` one per side."""
        rows = self.rows
        while len(rows) <= depth:
            rows.append([])
            self.ends.append([self.zero] * self.sides)
        ends = self.ends[depth]
        row = rows[depth]
        if self.per_side:
            for c in range(self.columns):
                row.extend((starts[c] - ends[c], values[2 * c], values[2 * c + 1]))
                ends[c] = starts[c] + spans[c]
        else:
            row.extend((starts[0] - ends[0], *values))
            ends[0] = starts[0] + spans[0]
        row.append(name)


def encode_levels(
    tree: CallTree, pruned: Pruned, names: dict[int, str], divisor: int = 1, per_side: bool = False
) -> FlameGraph:
    """The drawn nodes as rows of numbers per depth, children left to right in name order, ``other`` last."""
    columns = tree.totals.shape[1] if tree.totals.ndim == 2 else 1
    out = _Levels(columns, per_side, divisor)
    scale, zero = out.scale, out.zero
    totals, selfs, widths, functions, children, other = (
        pruned.totals,
        pruned.selfs,
        pruned.widths,
        pruned.functions,
        pruned.children,
        pruned.other,
    )
    emit, entry, spans_of, name_of = out.emit, out.entry, out.spans, out.name
    root_total = [int(v) for v in tree.total]
    root_self = [int(v) for v in tree.root_self]
    emit(0, [zero] * out.sides, spans_of(root_total), entry(root_total, root_self), 0)
    max_self = max([scale(v) for v in root_self] + [scale(v) for row in selfs for v in row] + [0])
    # Iterative depth-first walk: (node position, depth, x offset per side); -1 is the root.
    stack: list[tuple[int, int, list[float]]] = [(-1, 0, [zero] * out.sides)]
    while stack:
        node, depth, x = stack.pop()
        offset = list(x)  # children start at the parent's left edge; self is the gap at the right
        placed: list[tuple[int, int, list[float]]] = []
        for child in children.get(node, []):
            spans = spans_of(totals[child]) if per_side else [scale(widths[child])]
            label = name_of(names.get(functions[child], "?"))
            emit(depth + 1, offset, spans, entry(totals[child], selfs[child]), label)
            placed.append((child, depth + 1, offset))
            offset = [start + span for start, span in zip(offset, spans, strict=True)]
        folded = other.get(node)
        if folded and any(folded):
            emit(depth + 1, offset, spans_of(folded), entry(folded, folded), name_of(OTHER))
        stack.extend(reversed(placed))
    per_node = (3 * columns + 1) if per_side else (2 * columns + 2)
    return FlameGraph(
        names=list(out.names),
        levels=out.rows,
        total=scale(root_total[0]) if columns == 1 else [scale(v) for v in root_total],
        max_self=max_self,
        nodes=sum(len(level) // per_node for level in out.rows),
        truncated=pruned.truncated,
    )
