"""What a process's dedup caches were filled under: the GC epoch and the node generation, and the checks on them.

A process keeps every stored function, stack node and sample key in memory (:mod:`server.store.dedup`) and
catches up on what others append. Two things can make that copy untrue:

- **A collection** (every retention run that deleted something) drops rows no profile uses. The copy then
  holds extra rows, never wrong ones: harmless to a query, but a writer must not append a key or a node that
  names a dropped row. Writers compare the epoch their caches were filled under with the one their
  transaction reads under the append locks (:class:`~server.store.appends.EpochMoved`). The epoch noted here is
  the one read *before* the first of the caches read anything, so any collection after it refuses the write,
  even when the caches were filled by a query long before the process wrote anything.
- **A renumbering** (a collection that gives the stack tree's ids back, :mod:`server.store.gc`) moves the node
  generation on. The copy then names other nodes by the same ids. A query that mixes node ids it holds with
  node ids it reads (a rollup's node table, sample keys or tree segments appended since) would put values
  under the wrong functions. So every read that brings node ids in from the database reads the generation
  before and after, in the same connection (each statement sees every commit before it, on SQLite, on
  PostgreSQL and on a hot standby, so a generation that did not move between the two reads is the one the
  rows belong to), and refuses with :class:`~server.errors.Renumbered` when it is not the caches' own.
  The caches are then marked stale; the store replaces them before the next request (``Store.pinned``).

What a query already holds stays true without a check: sample keys keep their ids, and the caches' own key
nodes and tree agree with each other, since both are of one generation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection

from server.errors import Renumbered
from server.store.state import read_generation, read_marks

T = TypeVar("T")


class CacheMarks:
    """The epoch and generation one set of caches was filled under (None: nothing read yet), and whether a read
    found the generation moved (the caches must be replaced)."""

    def __init__(self, epoch: int | None = None) -> None:
        self._lock = threading.Lock()
        self.epoch = epoch
        self.generation: int | None = None
        self.stale = False

    def read(self, conn: Connection, read: Callable[[], T], *, nodes: bool) -> T:
        """``read()`` in ``conn``, noting the epoch first seen; with ``nodes`` (the rows carry stack node ids),
        refused with :class:`~server.errors.Renumbered` unless they are of the caches' generation."""
        if not nodes and self.epoch is not None and self.generation is not None:
            return read()  # nothing to note, nothing to check: rows without node ids are the same in any generation
        epoch, before = read_marks(conn)
        rows = read()
        after = read_generation(conn) if nodes else before
        with self._lock:
            if self.epoch is None:
                self.epoch = epoch
            if self.generation is None:
                self.generation = before
            if nodes and not before == after == self.generation:
                self.stale = True
                raise Renumbered()
        return rows

    def note_epoch(self, epoch: int) -> None:
        """The epoch read before anything else: kept unless a cache noted one already."""
        with self._lock:
            if self.epoch is None:
                self.epoch = epoch

    def check(self, conn: Connection) -> None:
        """Inside a writing transaction that holds the collection lock (no renumbering can commit before it does):
        :class:`~server.errors.Renumbered` unless the store's generation is the caches' own."""
        found = read_generation(conn)
        with self._lock:
            if self.generation is None:
                self.generation = found
            if found != self.generation:
                self.stale = True
                raise Renumbered()
