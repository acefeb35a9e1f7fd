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

Everything is numpy over the tree's nodes, one pass per level of the sandwich
trees: a node's samples are its subtree, so "once per sample" means counting,
among the nodes that reach the same sandwich node, only those not inside another
one's subtree. Such a nested pair is reached from two Fs, one above the other, at
the same distance, and the pair one level closer to the Fs is nested too: so only
entries grown from a nested entry (at the first level: from an F below another F,
the tree's ``recursive`` flag) are checked, and of those only the ones whose frame
is recursive (the other entry's frame lies above it, with the same function), each
against the entries of the Fs above its own, walking up the chain of Fs. The checks
stop after a level or two.

With ``max_nodes`` the trees are grown only where a flame graph of ``max_nodes``
nodes can draw: a node narrower than the ``max_nodes``-th widest found so far (or
than a lower bound of it) is not expanded (its descendants are no wider than it, so
none could be drawn).
Every node that is drawn, and each of its children (what ``other`` folds), is
still computed whole, so the flame graph is the same as from the full trees.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from server.query.filters import depths_of, keep_frames
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


def sandwich(tree: CallTree, function: int, max_nodes: int | None = None, depth: IntArray | None = None) -> Sandwich:
    """The sandwich of ``function`` (an id of ``tree``, whose same-name functions are already one id).

    ``max_nodes``: grow each tree only as far as a flame graph of that many nodes draws (module docstring);
    ``depth`` (per node, growing by one per level) saves working the depths out when they are needed.
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
        depth = None
        f_nodes = np.flatnonzero(tree.function == function)
    if max_nodes is not None and bool((tree.selfs < 0).any()):
        max_nodes = None  # with negative values a child can be wider than its parent
    found = _Found(tree, f_nodes, _Ancestry(tree, f_nodes, depth), max_nodes)
    return Sandwich(flat, cum, found.callers(cum), found.callees(flat, cum))


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


class _Ancestry:
    """What telling nested entries apart needs, each part worked out the first time it is needed:
    each F's nearest F above, node depths, and jumps of 2**j levels up (binary lifting)."""

    def __init__(self, tree: CallTree, f_nodes: IntArray, depth: IntArray | None) -> None:
        self.parent = tree.parent
        self.recursive = tree.recursive
        self.f_nodes = f_nodes
        self.is_f = np.zeros(len(tree) + 1, dtype=bool)  # and a last entry, True, for -1 (above a root)
        self.is_f[f_nodes] = True
        self.is_f[-1] = True
        self._depth = depth
        self._f_parent: IntArray | None = None
        self._below: IntArray | None = None
        self._jumps: list[IntArray] = []

    def f_parent(self) -> IntArray:
        """Per node, for F nodes: the nearest F strictly above (-1: none); a walk up from the F nodes only."""
        if self._f_parent is None:
            self._walk()
        assert self._f_parent is not None
        return self._f_parent

    def below_f_parent(self) -> IntArray:
        """Per node, for F nodes: the node just below their nearest F above, on the path down to them."""
        if self._below is None:
            self._walk()
        assert self._below is not None
        return self._below

    def _walk(self) -> None:
        """Up from each F with an F above (the tree's ``recursive`` flag), until that F."""
        n = self.parent.shape[0]
        found = np.full(n, -1, dtype=np.int64)
        below = np.full(n, -1, dtype=np.int64)
        nested = self.f_nodes[self.recursive[self.f_nodes]]
        nodes, at, above = nested, nested, self.parent[nested]
        while nodes.shape[0]:
            done = self.is_f[above]  # an F, or -1 above a root
            if bool(done.all()):
                found[nodes], below[nodes] = above, at
                break
            found[nodes[done]] = above[done]
            below[nodes[done]] = at[done]
            left = np.flatnonzero(~done)
            nodes, at = nodes[left], above[left]
            above = self.parent[at]
        self._f_parent, self._below = found, below

    def depth(self) -> IntArray:
        if self._depth is None:
            self._depth = depths_of(self.parent)
        return self._depth

    def ancestor(self, nodes: IntArray, steps: IntArray) -> IntArray:
        """The ancestor ``steps`` levels above each of ``nodes`` (``steps`` at most each node's depth)."""
        n = self.parent.shape[0]
        if not self._jumps:
            up = np.append(np.where(self.parent >= 0, self.parent, n), n)  # n: the root, its own parent
            self._jumps.append(up)
        need = int(steps.max()).bit_length() if steps.shape[0] else 0
        while len(self._jumps) < need:
            last = self._jumps[-1]
            self._jumps.append(last[last])
        at = nodes.copy()
        for bit in range(need):
            odd = ((steps >> bit) & 1).astype(bool)
            at[odd] = self._jumps[bit][at[odd]]
        return at


@dataclass(frozen=True, slots=True)
class _Level:
    """The entries of one level of a sandwich tree being grown, one per (tree node, F it is reached from).

    ``above``: the sandwich node of the level above (-1: the root, F); ``frame``: the tree node whose
    function the entry adds; ``source``: the F it is reached from; ``suspect``: whether the entry may
    be counted inside another entry of its sandwich node. At the first level that is when its F lies
    below another F; below, only when the entry it grew from was (two nested entries of one sandwich
    node grew from two nested entries of its parent, one level up).
    """

    above: IntArray
    frame: IntArray
    source: IntArray
    suspect: BoolArray

    def where(self, keep: BoolArray | IntArray) -> _Level:
        return _Level(self.above[keep], self.frame[keep], self.source[keep], self.suspect[keep])


_REFRESH = 256  # wider nodes found before the cut is worked out again


class _Widest:
    """A width under which a sandwich node cannot be drawn: the ``max_nodes``-th widest found so far, or less.

    Any lower bound of it is safe (the trees only grow further than needed), so once set it is worked
    out again only when ``_REFRESH`` wider nodes have come in, not on every level: a selection over
    ``max_nodes`` widths cost more than the rest of a small level.
    """

    def __init__(self, max_nodes: int | None) -> None:
        self._max = max_nodes
        self._widths: list[IntArray] = []  # the best so far, and the wider ones found since
        self._pending = 0  # widths in ``_widths`` since the last selection
        self._cut: int | None = None

    def drawable(self, totals: IntArray) -> BoolArray | None:
        """Which of a new level's nodes (their totals) may be drawn, and so are worth growing; None: all."""
        if self._max is None:
            return None
        width = totals[:, 0] if totals.shape[1] == 1 else totals.sum(axis=1)
        wider = width if self._cut is None else width[width > self._cut]  # only these can raise the cut
        if wider.shape[0]:
            self._widths.append(wider)
            self._pending += wider.shape[0]
        if self._pending >= (self._max if self._cut is None else _REFRESH):
            best = np.concatenate(self._widths)
            if best.shape[0] >= self._max:
                best = np.partition(best, best.shape[0] - self._max)[best.shape[0] - self._max :]
                self._cut = int(best.min())
                self._pending = 0
            self._widths = [best]
        if self._cut is None:
            return None
        drawable: BoolArray = width >= self._cut
        return drawable


class _Found:
    """The two sandwich trees of the F nodes ``f_nodes`` of ``tree``, each grown one level at a time."""

    def __init__(self, tree: CallTree, f_nodes: IntArray, ancestry: _Ancestry, max_nodes: int | None) -> None:
        self.tree = tree
        self.f_nodes = f_nodes
        self.nested = tree.recursive[f_nodes]  # an F above: the tree's recursive flag
        self.ancestry = ancestry
        self.max_nodes = max_nodes
        self._label = np.full(len(tree), -1, dtype=np.int64)  # scratch: per node, its entry's id on a level

    def callers(self, cum: IntArray) -> CallTree:
        """Paths up from every F, merged; a path's value counts once each sample below an F it leads to.

        An entry counts its F's subtree.
        """
        tree, f_nodes = self.tree, self.f_nodes
        at_root = tree.parent[f_nodes] < 0
        root_self = tree.totals[f_nodes[at_root]].sum(axis=0).reshape(-1)  # no F above a root: each sample once
        start = _Level(np.full(f_nodes.shape[0], -1, dtype=np.int64), tree.parent[f_nodes], f_nodes, self.nested)
        return self._grow(start.where(~at_root), root_self, cum, up=True)

    def callees(self, flat: IntArray, cum: IntArray) -> CallTree:
        """Paths down from every F, merged; a path's value counts each sample that holds it once.

        An entry counts its frame's subtree.
        """
        tree, f_nodes = self.tree, self.f_nodes
        n = len(tree)
        above = tree.parent + 1  # 0 for the root's children
        narrow = above.astype(np.uint16) if n < _SHORT else above  # 16 bits: numpy sorts them by radix
        self._child_order = np.argsort(narrow, kind="stable")  # siblings together, the root's children first
        counts = np.bincount(above, minlength=n + 1)
        self._many = counts[1:]  # per node, its children
        self._firsts = (np.cumsum(counts) - counts)[1:]  # per node, where its children start in the order
        start = self._down(np.full(f_nodes.shape[0], -1, dtype=np.int64), f_nodes, f_nodes, self.nested, None)
        return self._grow(start, flat, cum, up=False)

    def _down(
        self, above: IntArray, frame: IntArray, source: IntArray, suspect: BoolArray, keep: BoolArray | None
    ) -> _Level:
        """The next callees level: an entry per child of each entry's frame (of the entries ``keep`` holds)."""
        many = self._many[frame]
        if keep is not None:
            many = many * keep
        ends = np.cumsum(many)
        offsets = ends - many  # where each entry's children start among the new entries
        count = int(ends[-1]) if ends.shape[0] else 0
        children = self._child_order[np.repeat(self._firsts[frame] - offsets, many) + np.arange(count)]
        return _Level(np.repeat(above, many), children, np.repeat(source, many), np.repeat(suspect, many))

    def _grow(self, level: _Level, root_self: IntArray, total: IntArray, up: bool) -> CallTree:
        """Sandwich nodes by (node above, function), a level at a time, while some may still be drawn.

        Callers: an entry counts its F's subtree, and gives the node's self what reaches the root of
        the stack there (one F per stack reaches it). Callees: an entry counts its frame's subtree, and
        its self the samples ending at its frame (a sample ends once: no double count).
        """
        tree = self.tree
        function, parent, totals_of, selfs_of = tree.function, tree.parent, tree.totals, tree.selfs
        interner = _Interner(int(function.max()) + 1)
        widest = _Widest(self.max_nodes)
        distance = 0  # of this level's frames from their F
        suspects = bool(level.suspect.any())  # once a level has none, no level below has any
        while level.frame.shape[0]:
            distance += 1
            frame, source = level.frame, level.source
            groups = interner.add(level.above, function[frame])
            ids = groups.ids
            counted = source if up else frame
            values = totals_of[counted]
            if up:
                callers_of = parent[frame]
                ends = callers_of < 0
                selfs = self._root_selfs(groups, ends, values)
            else:
                selfs = groups.sum(selfs_of[frame])
            if suspects:
                inner = self._inner(level, ids, groups.count, counted, up, distance)
                suspects = bool(inner.any())
                if suspects:
                    values[inner] = 0  # a copy (fancy indexing): their samples are counted by another entry
            else:
                inner = level.suspect  # all False
            totals = groups.sum(values)
            interner.values(selfs, totals)
            grow = widest.drawable(totals)
            above = interner.globals(ids)
            keep = None if grow is None or bool(grow.all()) else grow[ids]
            if not up:
                level = self._down(above, frame, source, inner, keep)
                continue
            keep = ~ends if keep is None else keep & ~ends  # up to the callers, until the root of the stack
            level = _Level(above, callers_of, source, inner)
            if not bool(keep.all()):
                level = level.where(keep)
        return interner.tree(root_self, total)

    @staticmethod
    def _root_selfs(groups: _Groups, ends: BoolArray, values: IntArray) -> IntArray:
        """Callers' selfs: per node, the values of its entries whose frame is the root of its stack (few)."""
        selfs = np.zeros((groups.count, values.shape[1]), dtype=np.int64)
        if bool(ends.any()):
            np.add.at(selfs, groups.ids[ends], values[ends])
        return selfs

    def _inner(self, level: _Level, ids: IntArray, count: int, counted: IntArray, up: bool, distance: int) -> BoolArray:
        """Per entry, whether another entry of its sandwich node counts a node above its own (so its samples
        are counted there already).

        Only a ``suspect`` entry whose frame is recursive can be, and only when its sandwich node has more
        than one entry. Such an
        entry's counted node and the other's sit at the same distance from their Fs, and the other's F is
        an F above the entry's: each F above is tried in turn (its counted node is then that F for callers,
        the node as far above the entry's as that F is above its F for callees).
        """
        inner = np.zeros(ids.shape[0], dtype=bool)
        # The other entry's frame lies above the entry's (its F is above) and has the same function: so the
        # entry's frame is a recursive one. A cheap test first: then the F chain is often never walked.
        maybe = level.suspect & self.tree.recursive[level.frame]
        if not bool(maybe.any()):
            return inner
        doubt = np.bincount(ids, minlength=count) > 1
        check = np.flatnonzero(maybe & doubt[ids])
        if check.shape[0] == 0:
            return inner
        label = self._label
        label[counted] = ids  # a node is counted by at most one entry per level
        ancestry = self.ancestry
        f_parent = ancestry.f_parent()
        # The other entry's node: the F above itself (callers); one level below it, the node just below
        # that F on the way down (callees' first level, where nesting is checked most); else found by depth.
        below = ancestry.below_f_parent() if not up and distance == 1 else None
        depth = ancestry.depth() if not up and distance > 1 else None
        step = level.source[check]  # the F whose F above is tried next
        above = f_parent[step]
        live = above >= 0
        check, step, above = check[live], step[live], above[live]
        while check.shape[0]:
            if below is not None:
                other = below[step]
            elif depth is not None:
                other = ancestry.ancestor(counted[check], depth[level.source[check]] - depth[above])
            else:
                other = above
            hit = label[other] == ids[check]
            inner[check[hit]] = True
            check, step, above = check[~hit], above[~hit], f_parent[above[~hit]]
            live = above >= 0
            check, step, above = check[live], step[live], above[live]
        label[counted] = -1
        return inner


class _Groups:
    """Entries with equal keys as groups: ``ids`` per entry (0, 1, ... in key order), ``first`` per group its
    first entry, and sums per group.

    numpy's stable sort measured two to three times faster here than its default quicksort (levels of a
    few thousand keys); sums over the sorted entries (``reduceat``) are exact integers, unlike ``bincount``,
    and faster than ``np.add.at``.
    """

    def __init__(self, keys: IntArray, order: IntArray | None = None) -> None:
        if order is None:
            order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        starts = np.empty(keys.shape[0], dtype=bool)
        starts[:1] = True
        np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
        self.ids = np.empty(keys.shape[0], dtype=np.int64)
        self.ids[order] = np.cumsum(starts) - 1
        self.bounds = np.flatnonzero(starts)
        self.first: IntArray = order[self.bounds]
        self.count = int(self.bounds.shape[0])
        self._order = order

    def sum(self, values: IntArray) -> IntArray:
        """Per group, the sum of its entries' ``values`` (entries, columns)."""
        if self.count == 0:
            return np.zeros((0, values.shape[1]), dtype=np.int64)
        sums: IntArray = np.add.reduceat(values[self._order], self.bounds, axis=0)
        return sums


_RADIX_FROM = 1024  # entries on a level from which two radix sorts beat one sort of the keys (measured)
_SHORT = 1 << 16


class _Interner:
    """Sandwich nodes by (parent sandwich node, function), one depth level at a time (-1 is the root, F)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.parents: list[IntArray] = []
        self.functions: list[IntArray] = []
        self.selfs: list[IntArray] = []
        self.totals: list[IntArray] = []
        self.count = 0
        self.level_start = 0

    def add(self, above: IntArray, function: IntArray) -> _Groups:
        """A new level's nodes, numbered in (node above, function) order."""
        keys = (above + 1) * self.width + function
        order = None
        if keys.shape[0] >= _RADIX_FROM and self.width <= _SHORT and self.count - self.level_start < _SHORT:
            # Both parts fit 16 bits: two stable sorts of them (numpy sorts 16-bit keys by radix, in
            # linear time), the parent's after the function's, order the entries as the keys would.
            by_function = np.argsort(function.astype(np.uint16), kind="stable")
            local = above[by_function] - (self.level_start if self.parents else -1)
            order = by_function[np.argsort(local.astype(np.uint16), kind="stable")]
        groups = _Groups(keys, order)
        self.parents.append(above[groups.first])
        self.functions.append(function[groups.first])
        self.level_start = self.count
        self.count += groups.count
        return groups

    def globals(self, ids: IntArray) -> IntArray:
        """The last level's node numbers among all levels'."""
        numbered: IntArray = ids + self.level_start
        return numbered

    def values(self, selfs: IntArray, totals: IntArray) -> None:
        self.selfs.append(selfs)
        self.totals.append(totals)

    def tree(self, root_self: IntArray, total: IntArray) -> CallTree:
        columns = total.shape[0]
        empty = np.zeros(0, dtype=np.int64)
        no_values = np.zeros((0, columns), dtype=np.int64)
        return CallTree(
            node_ids=np.arange(self.count, dtype=np.int64),
            parent=np.concatenate(self.parents) if self.parents else empty,
            function=np.concatenate(self.functions) if self.functions else empty,
            recursive=np.zeros(self.count, dtype=bool),
            selfs=np.concatenate(self.selfs) if self.selfs else no_values,
            totals=np.concatenate(self.totals) if self.totals else no_values,
            root_self=root_self,
            total=total,
        )
