"""Deduplication: a profile's samples turned into sample-key ids, each thing that repeats stored once.

A sample's identity needs four kinds of ids: its functions (by content, see
:mod:`server.store.symbols`), its stack as a node of the prefix tree
(:mod:`server.store.stacks`), its label set (:mod:`server.store.labelsets`)
and the sample key tying them together (:mod:`server.store.samplekeys`).
A key's lines are stored with it as its line vector
(:mod:`server.store.linevectors`): what line granularity (``go tool pprof
-lines``) is built from, in memory, when a query asks for it
(:mod:`server.store.linestacks`).
Each table keeps a per-process cache of the ids it has handed out, so a
repeat scrape of a known service costs one vectorised hash and one dictionary
lookup per sample (its pprof identity, see :mod:`server.pprof.identity`);
only a miss walks the frames and touches the database.

Two rules keep cached ids true:

- *Rollback*: an id is cached only once the transaction that created it has
  committed. Each table's get-or-create does so (the stack tree adds a new
  segment's nodes to its index only after the segment's commit). An id
  kept from a rolled-back insert would be handed to the next profile, whose
  rows would then point at nothing.
- *Garbage collection*: collection deletes rows nothing references and moves
  the GC epoch on. A profile remembers the epoch its ids were resolved under;
  its commit compares it with the current one, and on a mismatch raises
  :class:`CachesStale`, after which the store replaces the caches with empty
  ones (:meth:`Dedup.fresh`) and the profile is resolved again. The epoch a set
  of caches holds is the one read before any of them read anything
  (:mod:`server.store.cachemarks`), however long before its first write.

A set of caches is replaced, never emptied in place: a query holding one
(``Store.pinned``) keeps a set whose parts agree with each other, even when a
renumbering of the stack tree makes the store start another.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from server.pprof.columns import ProfileColumns
from server.pprof.frames import Frames, expand, frame_values, unsymbolized
from server.pprof.identity import sample_keys
from server.pprof.labelruns import label_runs
from server.store.appends import Appends, EpochMoved
from server.store.cachemarks import CacheMarks
from server.store.labelsets import LabelsetKey, LabelsetTable
from server.store.linestacks import LineStacks
from server.store.linevectors import LineVectorTable
from server.store.samplekeys import Appended, SampleKeyTable
from server.store.stacks import StackTree
from server.store.state import read_epoch
from server.store.symbols import NOT_KNOWN, FunctionTable, function_digests

IntArray = npt.NDArray[np.int64]
#: What joins a profile's write transaction once its sample-key ids are known (see :meth:`Dedup.sample_key_ids`).
Joining = Callable[[IntArray, Appends], None]


class CachesStale(Exception):
    """Garbage collection ran since the ids of a profile were resolved: they may name deleted rows."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"garbage collection ran (epoch {epoch})")
        self.epoch = epoch


class Dedup:
    """The id caches of one process and the get-or-create that fills them from a profile's columns."""

    def __init__(self, engine: Engine, epoch: int | None = None, writing: threading.Lock | None = None) -> None:
        self._engine = engine
        #: The GC epoch and node generation the cached ids belong to (None: not read yet).
        self.marks = CacheMarks(epoch)
        self.functions = FunctionTable(engine, self.marks)
        self.stacks = StackTree(engine, marks=self.marks)
        self.line_vectors = LineVectorTable(engine, self.marks)
        self.lines = LineStacks()
        self.labelsets = LabelsetTable(engine)
        self.sample_keys = SampleKeyTable(engine, self.marks)
        self._writing = writing or threading.Lock()  # one writer of new rows at a time (see _Write)

    @property
    def epoch(self) -> int | None:
        """The GC epoch the cached ids belong to; None: not read yet."""
        return self.marks.epoch

    def fresh(self, epoch: int | None = None) -> Dedup:
        """Empty caches on the same database (after garbage collection, here or in another process), sharing
        this set's writer lock: a profile still being written with this set and one with the new never append
        at once."""
        return Dedup(self._engine, epoch, self._writing)

    def ensure_epoch(self) -> None:
        """Read the GC epoch the caches start from, once (a fresh process, or after a reset), unless a cache has
        read something already: the epoch read before that is theirs."""
        if self.marks.epoch is None:
            with self._engine.connect() as conn:
                self.marks.note_epoch(read_epoch(conn))

    def sample_key_ids(self, columns: ProfileColumns, joining: Joining | None = None) -> IntArray:
        """The sample-key id of every sample: one hash and one index lookup each once known.

        What the profile brings that is new (functions, stack nodes, sample keys and their line vectors)
        goes in one write transaction (:class:`~server.store.appends.Appends`), begun only when something
        is; its ids reach the caches once it commits. ``joining`` is given the ids and that transaction,
        if one was begun, before it commits: the store writes the profile's own row there rather than
        paying a second transaction for it.
        """
        labelsets = self.labelset_ids(columns)  # first: label sets commit on a connection of their own
        # Resolved under the caches' epoch: once a collection has run since, no segment is appended.
        write = _Write(self._engine, self._writing, self.epoch)
        try:
            with write.appends:
                function_ids = self.function_ids(columns, write)
                hashes = sample_keys(columns, function_ids, labelsets).view(np.int64)
                ids = self.sample_keys.lookup(hashes)
                missing = np.flatnonzero(ids < 0)
                if missing.size:
                    appends = write.begin()
                    frames = expand(columns, missing)  # the new keys' stacks only: known samples cost no frames
                    nodes = self.leaf_nodes(columns, function_ids, frames, appends=appends)
                    ids[missing] = self.sample_keys.create(
                        hashes[missing], nodes, labelsets[missing], self.epoch, appends, self._vectors_of(frames)
                    )
                if joining is not None and write.appends.begun:
                    joining(ids, write.appends)
        except EpochMoved as moved:
            raise CachesStale(moved.epoch) from None
        finally:
            write.release()
        # Keys stored before line data (migration 0015) get their line vector when seen again.
        lacking = np.flatnonzero(self.line_vectors.lacking(ids))
        if lacking.size:
            keys, first = np.unique(ids[lacking], return_index=True)
            with self._writing:
                try:
                    with Appends(self._engine, self.epoch) as fill:
                        self._vectors_of(expand(columns, lacking[first]))(keys, np.arange(keys.shape[0]), fill)
                except EpochMoved:
                    pass  # filled the next time the keys are seen
        return ids

    def line_leaves(self, keys: IntArray) -> IntArray:
        """The leaf of every sample key in the tree of line frames (:attr:`lines`), built from the keys' line
        vectors; :class:`~server.store.linestacks.NoLineVector` if some key has none (stored before line data)."""
        nodes, _ = self.sample_keys.resolve(keys)
        return self.lines.leaves(keys, nodes, self.stacks, self.line_vectors)

    def _vectors_of(self, frames: Frames) -> Appended:
        """What appends the line vectors of the keys made of samples ``frames`` holds (told the new keys' ids and
        the positions of their samples there, in the keys' transaction)."""

        def append(keys: IntArray, samples: IntArray, appends: Appends) -> None:
            # In the samples' order (a segment's rows need not be in key order): what the segments held since
            # the vectors were picked by a mask.
            order = np.argsort(samples, kind="stable")
            keys, samples = keys[order], samples[order]
            offsets = np.zeros(keys.shape[0] + 1, dtype=np.int64)
            np.cumsum(np.diff(frames.offsets)[samples], out=offsets[1:])
            # Per line entry first (thousands), then spread over the frames (tens of thousands), packed as stored.
            entry_values = (frames.entry_lines << 1) | (frames.entry_inlined != 0)
            self.line_vectors.append(keys, offsets, frame_values(frames, entry_values, samples), appends)

        return append

    def function_ids(self, columns: ProfileColumns, write: _Write | None = None) -> IntArray:
        """Database ids of the profile's functions, by position in its function columns.

        Followed by the ids of its unsymbolized frames (named ``[libc.so.6]``, ``<unknown>``...,
        see :mod:`server.pprof.frames`), stored as functions of that name with no file.
        Functions seen before are found by digest, all at once; only the others by their strings.
        New ones are inserted in ``write``'s transaction (else in one of their own).
        """
        extra = unsymbolized(columns).names
        if columns.function_id.size == 0 and not extra:
            return np.zeros(0, dtype=np.int64)
        first, second = function_digests(
            columns.strings, columns.function_name, columns.function_system_name, columns.function_filename
        )
        ids = self.functions.known(first, second)
        missing = np.flatnonzero(ids == NOT_KNOWN)
        if missing.size == 0 and not extra:
            return ids
        pick = columns.strings.__getitem__
        keys = list(
            zip(
                map(pick, columns.function_name[missing].tolist()),
                map(pick, columns.function_system_name[missing].tolist()),
                map(pick, columns.function_filename[missing].tolist()),
                strict=True,
            )
        )
        keys.extend((name, "", "") for name in extra)
        cached = self.functions.cached(keys)  # unsymbolized frames' names, say: no writer lock for them
        appends = write.begin() if write is not None and cached is None else None
        if cached is None:
            lines = columns.function_start_line[missing].tolist() + [0] * len(extra)
            cached = self.functions.ids(keys, lines, appends)
        found = np.array(cached, dtype=np.int64)
        ids[missing] = found[: missing.shape[0]]
        digests = (first[missing], second[missing], ids[missing])
        if appends is None:
            self.functions.remember(*digests)
        else:  # the ids may be this transaction's: found by digest only once it commits
            appends.after_commit(lambda: self.functions.remember(*digests))
        return np.concatenate([ids, found[missing.shape[0] :]])

    def leaf_nodes(
        self,
        columns: ProfileColumns,
        function_ids: IntArray,
        frames: Frames | None = None,
        appends: Appends | None = None,
    ) -> IntArray:
        """The stack node of every sample ``frames`` holds (default: all the profile's), walked down the stack tree."""
        frames = expand(columns) if frames is None else frames
        # The walk maps each frame's line entry to its function's id: a few thousand entries, ~80,000 frames.
        return self.stacks.resolve_arrays(
            frames.entries,
            frames.offsets,
            leaf_first=True,
            appends=appends,
            frame_of=function_ids[frames.entry_functions],
        )

    def labelset_ids(self, columns: ProfileColumns) -> IntArray:
        """Labelset ids per sample (0: none); distinct label index runs are resolved once per profile."""
        offsets = columns.sample_label_offsets
        n_samples = offsets.shape[0] - 1
        result = np.zeros(n_samples, dtype=np.int64)
        labelled = np.flatnonzero(np.diff(offsets) > 0)
        if labelled.size == 0:
            return result
        groups, first = label_runs(columns, labelled)
        strings = columns.strings
        stacked = np.stack([columns.label_key, columns.label_str, columns.label_num, columns.label_num_unit], axis=1)
        keys: list[LabelsetKey] = []
        for start, end in zip(offsets[labelled[first]].tolist(), offsets[labelled[first] + 1].tolist(), strict=True):
            string_labels: list[tuple[str, str]] = []
            num_labels: list[tuple[str, int, str]] = []
            for key, value, number, unit in stacked[start:end].tolist():
                if value:
                    string_labels.append((strings[key], strings[value]))
                elif number or unit:
                    num_labels.append((strings[key], number, strings[unit]))
            keys.append((tuple(sorted(string_labels)), tuple(sorted(num_labels))))
        ids = np.array(self.labelsets.ids(keys), dtype=np.int64)
        result[labelled] = ids[groups]
        return result


class _Write:
    """A profile's one write transaction, and the process's writer lock, taken before it is first needed.

    One writer of new rows at a time in a process: a writer waits for the append locks holding no table's
    memory lock, so a writer that holds them can always take the table locks it needs next.
    """

    def __init__(self, engine: Engine, lock: threading.Lock, epoch: int | None) -> None:
        self.appends = Appends(engine, epoch)
        self._lock = lock
        self._held = False

    def begin(self) -> Appends:
        """The transaction, the writer lock taken (call it before any table's memory lock is held)."""
        if not self._held:
            self._lock.acquire()
            self._held = True
        return self.appends

    def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()
