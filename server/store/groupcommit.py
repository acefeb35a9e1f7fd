"""Group commit: profiles that arrive while a write is running share the next transaction.

A profile's own transaction on PostgreSQL costs about seven round trips (the
pool's liveness ping, BEGIN, the garbage-collection lock and epoch, the row,
the blob, COMMIT), each one paid again in PostgreSQL's CPU and in
SQLAlchemy's Python. Under a push burst most of that is repeated work. Here a
writer that finds every writer slot busy (two by default) queues its item and
waits; when a slot frees, the first waiter writes every queued item in one
transaction and hands each writer its own result. Two slots rather than one
keep a transaction in flight while another is being prepared, so throughput
does not drop when the machine has CPU to spare (bench/groupcommit.py).

There is no timer and no extra thread: a lone writer commits at once, exactly
as without this class, so nothing waits for company that may never come.
A caller still returns only after its row is committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

#: A batch function answers one result per item, or the exception that item alone raised.
BatchWriter = Callable[[Sequence[Item]], Sequence["Result | BaseException"]]


class _Entry(Generic[Item, Result]):
    __slots__ = ("done", "error", "item", "result", "taken")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.taken = False  # in a writer's batch
        self.done = False
        self.result: Result | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[Item, Result]):
    def __init__(self, write: BatchWriter[Item, Result], max_batch: int = 64, writers: int = 2) -> None:
        self._write = write
        self._max_batch = max_batch
        self._writers = writers
        self._cond = threading.Condition()
        self._queue: list[_Entry[Item, Result]] = []
        self._writing = 0

    def submit(self, item: Item) -> Result:
        """Write ``item`` (alone or with others) and return its result once committed; raise its error."""
        entry: _Entry[Item, Result] = _Entry(item)
        with self._cond:
            self._queue.append(entry)
        while True:
            with self._cond:
                # Wait while every writer slot is taken, or while another writer has this item in hand.
                while not entry.done and (entry.taken or self._writing >= self._writers):
                    self._cond.wait()
                if entry.done:
                    break
                # A writer slot is free and this item still queued: write the oldest queued items (this
                # one comes in a later round if more than a batch is waiting ahead of it).
                self._writing += 1
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                for taken in batch:
                    taken.taken = True
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._writing -= 1
                    self._cond.notify_all()
        if entry.error is not None:
            raise entry.error
        return entry.result  # type: ignore[return-value]

    def _run(self, batch: list[_Entry[Item, Result]]) -> None:
        try:
            outcomes = self._write([entry.item for entry in batch])
        except BaseException as exc:
            if len(batch) == 1:
                self._settle(batch[0], exc)
                return
            # One item's failure must not become everyone's: each is tried again in its own transaction.
            for entry in batch:
                try:
                    (outcome,) = self._write([entry.item])
                except BaseException as alone:
                    outcome = alone
                self._settle(entry, outcome)
            return
        for entry, outcome in zip(batch, outcomes, strict=True):
            self._settle(entry, outcome)

    @staticmethod
    def _settle(entry: _Entry[Item, Result], outcome: Result | BaseException) -> None:
        if isinstance(outcome, BaseException):
            entry.error = outcome
        else:
            entry.result = outcome
        entry.done = True
