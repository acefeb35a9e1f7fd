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

Two steps, both over arrays (a week's tree has a million nodes; Python work
per drawn node cost most of a flame graph's time): :func:`prune` decides
which nodes are drawn (and what folds into ``other``), and
:func:`encode_levels` lays the drawn ones out level by level.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from server.query._calltree import fold, widest
from server.query.grouping import distinct_inverse
from server.query.tree import CallTree, Indices, as_indices, sum_totals

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
    return encode_levels(tree, prune(tree, max_nodes, drop_empty), names, divisor, per_side)


@dataclass(slots=True)
class Pruned:
    """The nodes a flame graph draws, and what folds into ``other``, as arrays over the drawn nodes."""

    kept: IntArray  # the drawn nodes' indices in the tree, ascending (so parents come before children)
    parent: IntArray  # per drawn node, its parent's position among the drawn (-1: the root)
    other_parent: IntArray  # drawn positions (-1: the root) with children folded into "other", ascending
    other_totals: IntArray  # (len(other_parent), columns): the summed totals of those children, not all zero
    truncated: bool  # whether any node was folded for ``max_nodes``


def prune(tree: CallTree, max_nodes: int, drop_empty: bool = False) -> Pruned:
    """The nodes drawn: the ``max_nodes`` widest (of the non-empty ones, with ``drop_empty``).

    Every node left out whose parent is drawn folds into that parent's ``other``; an
    ``other`` whose every value is zero is not drawn.
    """
    n = len(tree)
    columns = len(tree.total)
    totals = tree.totals.reshape(n, columns)
    width = totals[:, 0] if columns == 1 else totals.sum(axis=1)  # one column (all but diffs): no copy of it
    keep, truncated = _kept(tree, width, max_nodes, drop_empty)
    # A drawn node whose parent is not (only with negative values) is drawn as a child of the root. Row p + 1
    # of the sums is drawn position p's folded children, row 0 the root's.
    kept, parent, sums = _fold_drawn(keep, tree.parent, totals)
    rows = np.flatnonzero(np.any(sums != 0, axis=1))
    return Pruned(kept, parent, (rows - 1).astype(np.int64), sums[rows], truncated)


def _kept(tree: CallTree, width: IntArray, max_nodes: int, drop_empty: bool) -> tuple[BoolArray, bool]:
    """Which nodes are drawn, and whether ``max_nodes`` left some out."""
    n = len(tree)
    # With no negative value, a node whose values are all zero has only such nodes below it,
    # so leaving them out keeps every kept node's parent.
    empty = drop_empty and n > 0 and not bool((tree.selfs < 0).any())
    keep = np.any(tree.totals != 0, axis=1) if empty else None  # None: every node may be drawn
    if (n if keep is None else int(keep.sum())) <= max_nodes:
        return (np.ones(n, dtype=bool) if keep is None else keep), False
    # The max_nodes widest nodes, ties going to the lower index: nodes are in id order and a
    # parent's id is below its children's, so a kept node's ancestors are always kept too.
    # (Flags a node are made once: a flame graph's peak holds them for each node its range reached.)
    widest = _widest(width, max_nodes)
    if keep is not None:
        widest &= keep
    return widest, True


def _widest(width: IntArray, count: int) -> BoolArray:
    """Per node, whether it is among the ``count`` of greatest ``width``, ties going to the lower index (the first
    ``count`` of a sort by (-width, index)). One pass in C with a heap of ``count``, no copy of the widths."""
    out = np.zeros(width.shape[0], dtype=bool)
    widest(np.ascontiguousarray(width, dtype=np.int64), max(count, 0), out)
    return out


def _fold_drawn(keep: BoolArray, parent: Indices, totals: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """A call tree pruned to the nodes ``keep`` flags (nodes in id order; ``parent`` each one's parent index, -1
    for the root's children; ``totals`` a row of columns a node): the drawn nodes' indices, each one's parent
    among the drawn (-1: the root, or a parent not drawn), and per drawn node plus the root (row 0) the summed
    totals of its children that are not drawn. One pass, in C; sums wrap at 64 bits, as numpy's do."""
    drawn = int(np.count_nonzero(keep))
    kept = np.empty(drawn, dtype=np.int64)
    kept_parent = np.empty(drawn, dtype=np.int64)
    sums = np.zeros((drawn + 1, totals.shape[1]), dtype=np.int64)
    fold(
        keep,
        as_indices(parent),
        np.ascontiguousarray(totals),
        kept,
        kept_parent,
        sums,
    )
    return kept, kept_parent, sums


def _scaler(divisor: int) -> Callable[[float], float]:
    """Values as sent: divided by ``divisor``; whole numbers stay integers when it is 1
    (exact past 2**53, where a week of a fleet's CPU nanoseconds lies)."""
    if divisor == 1:
        return lambda value: value
    return lambda value: value / divisor


def encode_levels(
    tree: CallTree, pruned: Pruned, names: dict[int, str], divisor: int = 1, per_side: bool = False
) -> FlameGraph:
    """The drawn nodes as rows of numbers per depth, children left to right in name order, ``other`` last.

    What a depth-first walk writes, computed over arrays (a walk in Python cost most
    of a flame graph's time, and the sandwich draws two): see :class:`_Entries`. The
    rows are one matrix, converted to Python numbers at once and cut per level.
    """
    columns = len(tree.total)
    sides = columns if per_side else 1
    scale = _scaler(divisor)
    entries = _Entries.of(tree, pruned, names, per_side)
    ordered = entries.in_levels
    widths = entries.widths[ordered]
    if divisor == 1:
        starts: npt.NDArray[np.int64] | npt.NDArray[np.float64] = entries.starts[ordered]
        ends = starts + widths
    else:
        starts = _float_starts(entries.up[ordered], ordered, widths, entries.root, sides, scale)
        ends = starts + _scaled(widths, divisor)
    level_sizes = np.bincount(entries.depth, minlength=1)[1:]
    gaps = starts.copy()
    gaps[1:] -= ends[:-1]
    firsts = np.cumsum(level_sizes) - level_sizes  # a level's first entry starts from 0
    gaps[firsts] = starts[firsts]
    root_total = tree.total.reshape(1, columns).astype(np.int64)
    root_self = tree.root_self.reshape(1, columns).astype(np.int64)
    totals = np.concatenate((root_total, entries.totals[ordered]))
    selfs = np.concatenate((root_self, entries.selfs[ordered]))
    name_index = np.concatenate(([0], entries.name_index[ordered]))
    per_node = (3 * columns + 1) if per_side else (2 * columns + 2)
    step = 3 if per_side else 2
    matrix = np.zeros((totals.shape[0], per_node), dtype=np.int64 if divisor == 1 else np.float64)
    matrix[1:, 0 : step * sides : step] = gaps  # a gap per side, before its values; the root's are 0
    matrix[:, 1 : 1 + step * columns : step] = totals if divisor == 1 else _scaled(totals, divisor)
    matrix[:, 2 : 2 + step * columns : step] = selfs if divisor == 1 else _scaled(selfs, divisor)
    matrix[:, -1] = name_index
    flat: list[float] = matrix.ravel().tolist()
    if divisor != 1:
        flat[per_node - 1 :: per_node] = name_index.tolist()  # name indexes stay integers
    cuts = np.cumsum([0, 1, *level_sizes.tolist()]) * per_node
    drawn_selfs = entries.selfs[: entries.root]  # not the "other" entries
    best = int(root_self.max())
    if drawn_selfs.size:
        best = max(best, int(drawn_selfs.max()))
    root_values = [int(v) for v in tree.total]
    return FlameGraph(
        names=entries.names,
        levels=[flat[a:b] for a, b in itertools.pairwise(cuts.tolist())],
        total=scale(root_values[0]) if columns == 1 else [scale(v) for v in root_values],
        max_self=scale(best) if best >= 0 else 0,  # as max() over the scaled values and 0 picks
        nodes=int(totals.shape[0]),
        truncated=pruned.truncated,
    )


@dataclass(slots=True)
class _Entries:
    """The entries a walk writes below the root: the drawn nodes (0..m-1), then each ``other`` (m + i).

    Siblings are sorted by name; subtree sizes are summed in one pass from the last
    node; a node's preorder index and its x offsets are then sums along its path
    of what its earlier siblings hold (pointer jumping). Each level's row is its
    entries in preorder, an ``other`` right after its parent's last descendant; and
    names are numbered in the order the walk writes them: on visiting a node (in
    preorder), its children and then its ``other``.
    """

    root: int  # m: the root's index in ``up``
    up: IntArray  # each entry's parent (m for the root)
    depth: IntArray  # 1 for the root's children
    totals: IntArray  # (entries, columns); an "other" has its folded totals as total and self
    selfs: IntArray
    widths: IntArray  # (entries, sides): the width on each axis
    starts: IntArray  # (entries, sides): the left edge on each axis, whole numbers
    in_levels: IntArray  # the entries by level, left to right
    names: list[str]
    name_index: IntArray  # per entry, its index in ``names``

    @classmethod
    def of(cls, tree: CallTree, pruned: Pruned, names: dict[int, str], per_side: bool) -> _Entries:
        columns = len(tree.total)
        kept, parent = pruned.kept, pruned.parent
        m = int(kept.shape[0])
        k = int(pruned.other_parent.shape[0])
        functions = tree.function[kept].astype(np.int64)
        labels = _Labels.of(functions, names)
        order = np.lexsort((labels.ranks[labels.which], parent))  # by parent, then name, then position
        up = np.append(np.where(parent >= 0, parent, m), m)  # the root is index m, its own parent
        depth = _path_sums(up, np.append(np.ones(m, dtype=np.int64), 0))
        size = _subtree_sizes(parent)
        other_totals = pruned.other_totals.reshape(k, columns)
        totals = np.concatenate((tree.totals[kept].reshape(m, columns), other_totals))
        selfs = np.concatenate((tree.selfs[kept].reshape(m, columns), other_totals))
        widths = totals if per_side else totals.sum(axis=1, keepdims=True)
        sides = widths.shape[1]
        steps = np.zeros((m + 1, 1 + sides), dtype=np.int64)
        steps[order] = _before_siblings(parent[order], np.column_stack((size[:m][order], widths[:m][order])))
        steps[:m, 0] += 1
        walked = _path_sums(up, steps)  # column 0: the preorder index (the root's is 0); then x per side
        pre = walked[:, 0]
        other_up = np.where(pruned.other_parent >= 0, pruned.other_parent, m)
        entry_up = np.concatenate((up[:m], other_up))
        entry_depth = np.concatenate((depth[:m], depth[other_up] + 1))
        place = np.concatenate((2 * pre[:m], 2 * (pre[other_up] + size[other_up] - 1) + 1))
        span = 2 * m + 2  # place < span
        children_width = np.zeros((m + 1, sides), dtype=np.int64)
        np.add.at(children_width, up[:m], widths[:m])
        starts = np.concatenate((walked[:m, 1:], walked[other_up, 1:] + children_width[other_up]))
        met = np.argsort(pre[entry_up] * span + place)  # the order the walk writes the entries
        numbered, name_index = labels.numbered(met, k)
        return cls(
            root=m,
            up=entry_up,
            depth=entry_depth,
            totals=totals,
            selfs=selfs,
            widths=widths,
            starts=starts,
            in_levels=np.argsort(entry_depth * span + place),
            names=numbered,
            name_index=name_index,
        )


@dataclass(slots=True)
class _Labels:
    """The distinct functions of the drawn nodes, with their names (looked up once each)."""

    which: IntArray  # per drawn node, its function's index among the distinct ones
    labels: list[str]  # per distinct function, its name as drawn ("?" when unknown)
    ranks: IntArray  # per distinct function, its name's rank in sort order (unknown sorts as ""); ties equal

    @classmethod
    def of(cls, functions: IntArray, names: dict[int, str]) -> _Labels:
        distinct, which = distinct_inverse(functions)
        found = list(map(names.get, distinct.tolist()))
        if None in found:
            keys = [name if name is not None else "" for name in found]
            labels = [name if name is not None else "?" for name in found]
        else:
            keys = labels = cast(list[str], found)
        rank_of = {name: rank for rank, name in enumerate(sorted(set(keys)))}
        ranks = np.array(list(map(rank_of.__getitem__, keys)), dtype=np.int64)
        return cls(which.reshape(-1).astype(np.int64), labels, ranks)

    def numbered(self, met: IntArray, others: int) -> tuple[list[str], IntArray]:
        """Names numbered as the walk meets them (``met``: the entries in that order; the drawn nodes,
        then ``others`` entries "other"), "total" first; and each entry's number."""
        count = len(self.labels)
        which = np.concatenate((self.which, np.full(others, count, dtype=np.int64)))  # "other" is one more
        rank = np.empty(met.shape[0], dtype=np.int64)
        rank[met] = np.arange(met.shape[0], dtype=np.int64)
        first = np.full(count + 1, met.shape[0], dtype=np.int64)
        np.minimum.at(first, which, rank)
        met_labels = np.flatnonzero(first < met.shape[0])
        in_order = met_labels[np.argsort(first[met_labels])].tolist()
        labels = [*self.labels, OTHER]
        numbering = {"total": 0}
        number = np.zeros(count + 1, dtype=np.int64)
        drawn = [labels[i] for i in in_order]
        if len(set(drawn)) == len(drawn) and "total" not in drawn:  # the usual case: one function a name
            number[in_order] = np.arange(1, len(drawn) + 1)
            return ["total", *drawn], number[which]
        for i, label in zip(in_order, drawn, strict=True):
            number[i] = numbering.setdefault(label, len(numbering))
        return list(numbering), number[which]


def _path_sums(up: IntArray, values: IntArray) -> IntArray:
    """Per node, ``values`` summed over it and its ancestors, by pointer jumping (log2 of the depth rounds).

    ``up`` is each node's parent; the last index is the root, its own parent, with values 0.
    """
    sums = values.copy()
    root = up.shape[0] - 1
    while bool((up != root).any()):
        sums = sums + sums[up]
        up = up[up]
    return sums


def _subtree_sizes(parent: IntArray) -> IntArray:
    """Nodes in each drawn node's subtree, itself included; the last entry is the root's (all of them, and it).
    A drawn node's parent comes before it, so the sizes add up in one pass from the last node."""
    m = parent.shape[0]
    size = np.ones((m + 1, 1), dtype=np.int64)
    sum_totals(size[:m], parent)
    size[m] = m + 1
    return size.reshape(-1)


def _before_siblings(parent: IntArray, values: IntArray) -> IntArray:
    """Rows grouped by ``parent`` (in order): each row's sum of ``values`` over the rows before it in its group."""
    m = parent.shape[0]
    before = np.cumsum(values, axis=0) - values
    first = np.ones(m, dtype=bool)
    first[1:] = parent[1:] != parent[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(m), 0)) if m else np.zeros(0, dtype=np.int64)
    found: IntArray = before - before[start]
    return found


def _scaled(values: IntArray, divisor: int) -> npt.NDArray[np.float64]:
    """``values / divisor`` as Python divides integers (exactly rounded, also past 2**53)."""
    if values.size == 0 or int(np.abs(values).max()) < 2**53:
        exact: npt.NDArray[np.float64] = values / divisor
        return exact
    return np.array([v / divisor for v in values.ravel().tolist()], dtype=np.float64).reshape(values.shape)


def _float_starts(
    up: IntArray, entries: IntArray, widths: IntArray, root: int, sides: int, scale: Callable[[float], float]
) -> npt.NDArray[np.float64]:
    """Left edges under a divisor, added one sibling after another from the parent's edge as a walk adds
    them (float sums depend on their order). ``entries`` in level order; ``root`` is the root's index."""
    running: dict[int, list[float]] = {root: [0.0] * sides}
    starts: list[list[float]] = []
    for entry, above, width in zip(entries.tolist(), up.tolist(), widths.tolist(), strict=True):
        start = running[above]
        starts.append(start)
        running[above] = [edge + scale(w) for edge, w in zip(start, width, strict=True)]
        if entry < root:
            running[entry] = start
    return np.array(starts, dtype=np.float64).reshape(-1, sides)
