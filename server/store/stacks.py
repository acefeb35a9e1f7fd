"""The stack prefix tree: every distinct stack of every profile, stored once.

A stack (root first) is a path in the tree; a sample stores only the id of
its leaf node. Scrapes of one service repeat the same stacks, so after the
first few scrapes ingest finds every stack in :attr:`StackTree._stacks` and
touches no table at all.

The same object keeps the tree as numpy arrays indexed by node id (parent,
function, depth, recursive flag) for queries: merging profiles then means
summing values per leaf id and propagating sums to parents level by level.
Node ids grow monotonically and a parent is always written before its
children, so a parent's id is always smaller than its child's.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, select

from server.store.database import chunks, insert_returning
from server.store.models import StackNode

IntArray = npt.NDArray[np.int64]
ROOT = 0


#: Unknown nodes at which ``ensure`` reads every node up to the highest one in one query.
BULK_LOAD = 2000


class StackTree:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.RLock()
        self._children: dict[tuple[int, int], int] = {}
        self._journal: list[int] | None = None  # nodes cached by the transaction in progress
        self._stacks: dict[Hashable, int] = {}
        size = 1024
        self.parent: IntArray = np.full(size, -1, dtype=np.int64)
        self.function: IntArray = np.zeros(size, dtype=np.int64)
        self.depth: IntArray = np.zeros(size, dtype=np.int64)
        self.recursive = np.zeros(size, dtype=bool)
        self.known = np.zeros(size, dtype=bool)
        self.known[ROOT] = True

    # -- ingest side -------------------------------------------------------

    def cached_stack(self, key: Hashable) -> int | None:
        return self._stacks.get(key)

    def resolve(self, keys: Sequence[Hashable], stacks: Sequence[Sequence[int]]) -> list[int]:
        """Leaf node ids for stacks given root first as function ids, creating missing nodes.

        ``keys`` are the caller's compact names for the same stacks; they are
        remembered so the next profile with these stacks skips the walk.
        Missing nodes are created one depth level at a time (a child needs its
        parent's id), all levels in one transaction.
        """
        with self._lock:
            leaves = [self._walk(stack) for stack in stacks]
            pending = [i for i, (_, depth) in enumerate(leaves) if depth < len(stacks[i])]
            if pending:
                journal: list[int] = []
                self._journal = journal
                try:
                    self._create_levels(stacks, leaves, pending)
                except BaseException:
                    self._forget(journal)  # rolled back: no id from it may stay in the cache
                    raise
                finally:
                    self._journal = None
            result = [node for node, _ in leaves]
            for key, node in zip(keys, result, strict=True):
                self._stacks[key] = node
            return result

    def _create_levels(
        self, stacks: Sequence[Sequence[int]], leaves: list[tuple[int, int]], pending: list[int]
    ) -> None:
        """Create the missing nodes one depth level at a time (a child needs its parent's id), in one transaction."""
        with self._engine.begin() as conn:
            while pending:
                wanted: dict[tuple[int, int], tuple[int, bool]] = {}
                for i in pending:
                    node, depth = leaves[i]
                    stack = stacks[i]
                    function = stack[depth]
                    wanted[(node, function)] = (depth + 1, function in stack[:depth])
                self._create(conn, wanted)
                for i in pending:
                    leaves[i] = self._walk(stacks[i], *leaves[i])
                pending = [i for i in pending if leaves[i][1] < len(stacks[i])]

    def _forget(self, nodes: list[int]) -> None:
        for node in nodes:
            self._children.pop((int(self.parent[node]), int(self.function[node])), None)
            self.known[node] = False

    def _walk(self, stack: Sequence[int], node: int = ROOT, depth: int = 0) -> tuple[int, int]:
        children = self._children
        while depth < len(stack):
            child = children.get((node, stack[depth]))
            if child is None:
                break
            node = child
            depth += 1
        return node, depth

    def _create(self, conn: Connection, wanted: dict[tuple[int, int], tuple[int, bool]]) -> None:
        rows = [
            {"parent_id": parent, "function_id": function, "depth": depth, "recursive": recursive}
            for (parent, function), (depth, recursive) in wanted.items()
        ]
        columns = (StackNode.id, StackNode.parent_id, StackNode.function_id, StackNode.depth, StackNode.recursive)
        self._add(insert_returning(conn, StackNode.__table__, rows, columns))  # type: ignore[arg-type]
        raced = [pair for pair in wanted if pair not in self._children]
        if raced:
            # Another writer created these between our cache miss and our insert; read theirs.
            # Filtering by parent alone uses the (parent_id, function_id) index on both databases.
            for part in chunks(sorted({parent for parent, _ in raced}), 500):
                query = select(*columns).where(StackNode.parent_id.in_(part))
                self._add([row for row in conn.execute(query).all() if (row[1], row[2]) in wanted])

    def _add(self, rows: Sequence[Sequence[int]]) -> None:
        if not rows:
            return
        top = max(int(row[0]) for row in rows)
        self._grow(top + 1)
        for node, parent, function, depth, recursive in rows:
            if self._journal is not None:
                self._journal.append(int(node))
            self._children[(parent, function)] = node
            self.parent[node] = parent
            self.function[node] = function
            self.depth[node] = depth
            self.recursive[node] = recursive
            self.known[node] = True

    def _grow(self, size: int) -> None:
        current = self.parent.shape[0]
        if size <= current:
            return
        new = max(size, current * 2)
        self.parent = np.concatenate([self.parent, np.full(new - current, -1, dtype=np.int64)])
        self.function = np.concatenate([self.function, np.zeros(new - current, dtype=np.int64)])
        self.depth = np.concatenate([self.depth, np.zeros(new - current, dtype=np.int64)])
        self.recursive = np.concatenate([self.recursive, np.zeros(new - current, dtype=bool)])
        self.known = np.concatenate([self.known, np.zeros(new - current, dtype=bool)])

    # -- query side --------------------------------------------------------

    def ensure(self, nodes: IntArray) -> None:
        """Make sure ``nodes`` and all their ancestors are loaded.

        Another process (a second server replica) may have written them, so
        whatever this process has not seen is read from the database.
        """
        with self._lock:
            frontier = np.unique(nodes[nodes > ROOT])
            while frontier.size:
                self._grow(int(frontier[-1]) + 1)
                missing = frontier[~self.known[frontier]]
                if missing.size > BULK_LOAD:
                    # A cold cache (a fresh process): ancestors always have smaller ids than their
                    # children, so one range read loads them all, instead of a query per depth level.
                    self._load_upto(int(missing[-1]))
                elif missing.size:
                    self._load(missing.tolist())
                    lost = frontier[~self.known[frontier]]
                    if lost.size:
                        raise LookupError(f"stack nodes {lost[:5].tolist()} are missing from the database")
                parents = np.unique(self.parent[frontier])
                frontier = parents[parents > ROOT]

    def _load_upto(self, highest: int) -> None:
        columns = (StackNode.id, StackNode.parent_id, StackNode.function_id, StackNode.depth, StackNode.recursive)
        with self._engine.connect() as conn:
            rows = conn.execute(select(*columns).where(StackNode.id <= highest)).all()
        if not rows:
            return
        table = np.array([tuple(row) for row in rows], dtype=np.int64).reshape(-1, 5)
        nodes = table[:, 0]
        self._grow(int(nodes.max()) + 1)
        self.parent[nodes] = table[:, 1]
        self.function[nodes] = table[:, 2]
        self.depth[nodes] = table[:, 3]
        self.recursive[nodes] = table[:, 4].astype(bool)
        self.known[nodes] = True
        keys = zip(table[:, 1].tolist(), table[:, 2].tolist(), strict=True)
        self._children.update(zip(keys, nodes.tolist(), strict=True))

    def _load(self, ids: list[int]) -> None:
        with self._engine.connect() as conn:
            for part in chunks(ids, 500):
                query = select(
                    StackNode.id, StackNode.parent_id, StackNode.function_id, StackNode.depth, StackNode.recursive
                ).where(StackNode.id.in_(part))
                self._add(conn.execute(query).all())

    def ancestors_closure(self, nodes: IntArray) -> IntArray:
        """``nodes`` plus every ancestor of them, sorted, the root excluded."""
        self.ensure(nodes)
        seen = [np.unique(nodes[nodes > ROOT])]
        frontier = seen[0]
        while frontier.size:
            frontier = np.unique(self.parent[frontier])
            frontier = frontier[frontier > ROOT]
            seen.append(frontier)
        return np.unique(np.concatenate(seen))
