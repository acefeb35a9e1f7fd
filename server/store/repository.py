"""The store: one object per database that owns the engine, the dedup caches and the tables.

``write`` turns a resolved profile into rows: its samples become sample-key
ids (:mod:`server.store.dedup`, which stores each function, stack, label set
and sample identity once) and one blob of (sample key, values), committed
with the profile's row: in the transaction of the new rows the profile
brought, if any, else in a group commit shared with the profiles written at
the same moment. The read methods at the end are what the query layer
needs from stored profiles, so it never handles blobs or dedup tables itself.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from server.pprof.columns import ProfileColumns
from server.pprof.header import Header
from server.store import blob, idempotency
from server.store.alerting import AlertTables
from server.store.appends import Appends
from server.store.availability import is_transient_conflict
from server.store.cachemarks import CacheMarks
from server.store.database import make_engine
from server.store.dedup import CachesStale, Dedup
from server.store.dumps import GoroutineTable
from server.store.groupcommit import GroupCommit
from server.store.labelsets import LabelsetKey, LabelsetTable
from server.store.linestacks import LineFrames
from server.store.profiles import ProfileMeta, ProfileTable, Shape
from server.store.registry import TargetTable, TraceTable
from server.store.replica import ReadReplica
from server.store.rollups import HOUR_S, LateMarks, LeafNodes, RollupTable, bucket_of, invalidate
from server.store.samplekeys import SampleKeyTable
from server.store.samples import SampleArrays, aggregate
from server.store.series import SeriesInfo, SeriesTable
from server.store.stacks import StackTree
from server.store.state import lock_against_gc
from server.store.symbols import FunctionTable

log = logging.getLogger(__name__)
#: Times a profile's write is run again after PostgreSQL rolled it back to break a deadlock.
_CONFLICT_RETRIES = 3

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class _Pending:
    """A resolved profile waiting for its transaction (see :mod:`server.store.groupcommit`)."""

    row: dict[str, Any]
    blob: bytes
    epoch: int | None  # the GC epoch its cached ids were resolved under
    late: bool  # its hour may be rolled up already


@dataclass(frozen=True, slots=True)
class StoredProfile:
    id: int
    series: SeriesInfo
    time_ns: int
    samples: int
    totals: list[int]
    created: bool = True  # False: an earlier write with the same idempotency key is what is returned


class Store:
    def __init__(self, engine: Engine, replica: ReadReplica | None = None) -> None:
        self.engine = engine
        #: Where queries read: a store on the hot standby's routed engine, or this store itself.
        self.replica = replica
        self.reader: Store = Store(replica.engine) if replica is not None else self
        self.dedup = Dedup(engine)
        self.series = SeriesTable(engine)
        self.profiles = ProfileTable(engine)
        self.rollups = RollupTable(engine, self.profiles, self._node_caches)
        self._late_marks = LateMarks()
        self._commits: GroupCommit[_Pending, tuple[int, bool]] = GroupCommit(self._commit)
        self.targets = TargetTable(engine)
        self.traces = TraceTable(engine)
        self.alerts = AlertTables(engine)
        self.goroutines = GoroutineTable(engine)

    @classmethod
    def from_url(
        cls,
        url: str,
        pool_size: int = 20,
        read_url: str | None = None,
        read_max_lag_s: float = 30.0,
        read_check_interval_s: float = 1.0,
    ) -> Store:
        """A store on ``url``; with ``read_url`` (a PostgreSQL hot standby), queries read there while it keeps up."""
        engine = make_engine(url, pool_size)
        if read_url is None:
            return cls(engine)
        replica = ReadReplica(engine, read_url, pool_size, read_max_lag_s, read_check_interval_s)
        replica.start()
        return cls(engine, replica)

    def close(self) -> None:
        if self.replica is not None:
            self.replica.close()
        self.engine.dispose()

    # The dedup caches, by their tables' names (a reset replaces them, so they are looked up each time).

    @property
    def functions(self) -> FunctionTable:
        return self.dedup.functions

    @property
    def stacks(self) -> StackTree:
        return self.dedup.stacks

    @property
    def line_stacks(self) -> StackTree:
        """Stacks of (function, line) frames, in memory: line granularity (see :meth:`line_leaves`)."""
        return self.dedup.lines.tree

    @property
    def line_frames(self) -> LineFrames:
        return self.dedup.lines.frames

    def line_leaves(self, keys: IntArray) -> IntArray:
        """The leaf of every sample key in :attr:`line_stacks`, built from the keys' line vectors;
        :class:`~server.store.linestacks.NoLineVector` if some key has none (stored before line data)."""
        return self.dedup.line_leaves(keys)

    @property
    def labelsets(self) -> LabelsetTable:
        return self.dedup.labelsets

    @property
    def sample_keys(self) -> SampleKeyTable:
        return self.dedup.sample_keys

    def reset_caches(self, epoch: int | None = None) -> None:
        """Forget every cached id (after garbage collection, here or in another process): a new set of caches,
        so a query holding the old one (:meth:`pinned`) keeps a set whose parts agree."""
        self.dedup = self.dedup.fresh(epoch)

    def pinned(self) -> Store:
        """This store with its caches fixed for one request: a query reads every id through one set of caches,
        even if another thread replaces them meanwhile. A set a read found out of date (the stack tree was
        renumbered, :mod:`server.store.cachemarks`) is replaced first."""
        self._fresh_caches()
        return copy.copy(self)

    def _fresh_caches(self) -> Dedup:
        """The current caches, replaced first if a read found them of an older node generation."""
        if self.dedup.marks.stale:
            self.reset_caches()
        return self.dedup

    # -- writing -----------------------------------------------------------

    def write(
        self,
        columns: ProfileColumns,
        header: Header,
        kind: str,
        labels: dict[str, str],
        time_ns: int,
        idempotency_key: str | None = None,
        max_series_per_service: int | None = None,
    ) -> StoredProfile:
        """Store a validated profile (``header`` is :meth:`Header.of` its columns) under the series (kind, labels).

        If garbage collection ran since the caches were filled, the ids they
        hold may be gone: the store transaction notices (``gc_epoch``), and the
        profile is resolved again with empty caches.

        With an ``idempotency_key`` already stored, no profile is written and
        the stored one is returned (``created`` False). The unique index
        decides, in the writing transaction, rather than a lookup first: that
        would cost every write a query to speed up only the rare retry.
        """
        key = idempotency.digest(idempotency_key) if idempotency_key is not None else None
        self.dedup.ensure_epoch()
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                try:
                    stored = self._write(columns, header, kind, labels, time_ns, key, max_series_per_service)
                except CachesStale as stale:
                    self.reset_caches(stale.epoch)
                    stored = self._write(columns, header, kind, labels, time_ns, key, max_series_per_service)
                break
            except DBAPIError as exc:
                # PostgreSQL rolled this profile's transaction back because of what another did meanwhile: it broke
                # a lock cycle (another writer's, a rollup build's or a partition's locks), or a partition attached
                # while the insert waited narrowed the default partition it was routed to. Nothing of it was written
                # and no id of it was cached (ids enter the caches only after a commit), so it is written again, a
                # bounded number of times.
                if attempt == _CONFLICT_RETRIES or not is_transient_conflict(exc):
                    raise
                log.warning("profile write retried after a lock conflict", extra={"attempt": attempt + 1})
        if not stored.created and key is not None:
            found = self._existing(key, kind, labels)
            assert found is not None
            return found
        return stored

    def _existing(self, key: str, kind: str, labels: dict[str, str]) -> StoredProfile | None:
        meta = self.profiles.find_key(key)
        if meta is None:
            return None
        series = self.series.get_or_create(kind, labels)
        if meta.series_id != series.id:
            raise idempotency.KeyReused(meta.id)
        return StoredProfile(meta.id, series, meta.time_ns, meta.samples, meta.totals, created=False)

    def _write(
        self,
        columns: ProfileColumns,
        header: Header,
        kind: str,
        labels: dict[str, str],
        time_ns: int,
        key: str | None,
        max_series_per_service: int | None,
    ) -> StoredProfile:
        n_types = len(header.sample_types)
        n_samples = columns.sample_loc_offsets.shape[0] - 1
        values = columns.sample_values.reshape(n_samples, n_types)
        # The series first: a series past its service's limit is refused before any stack is written.
        series = self.series.get_or_create(kind, labels, max_series_per_service)
        # A column at a time: summed down the rows (``axis=0``), numpy ran its inner loop once a row, two values at a
        # time, ~25 us for ~2,000 samples and ~0.3 ms right after ISA-L's inflate (docs/storage-history.md, the numpy
        # pass); two column sums take ~4 us.
        totals = [int(values[:, column].sum()) for column in range(n_types)]
        shape = Shape(
            str(header.period_type) if header.period_type else "",
            tuple(str(v) for v in header.sample_types),
            header.default_sample_type,
        )
        row = {
            "series_id": series.id,
            "shape_id": self.profiles.shape_id(shape),
            "time_ns": time_ns,
            "duration_ns": header.duration_nanos,
            "period": header.period,
            "samples": n_samples,
            "totals": totals,
            "idempotency_key": key,
        }
        late = time_ns < bucket_of(time.time_ns(), HOUR_S)  # its hour (and day) may be rolled up already
        joined: list[tuple[int, bool]] = []

        def join(ids: IntArray, appends: Appends) -> None:
            # Written under the epoch of the caches only: otherwise the group commit refuses it, as it would.
            if appends.epoch == self.dedup.epoch:
                joined.append(self._insert_joined(appends, row, blob.encode(aggregate(ids, values)), late))

        # A keyed row stays with the group commit: its per-key lock is never taken under the append locks.
        ids = self.dedup.sample_key_ids(columns, join if key is None else None)
        if joined:
            profile_id, created = joined[0]
        else:
            pending = _Pending(row, blob.encode(aggregate(ids, values)), self.dedup.epoch, late)
            profile_id, created = self._commits.submit(pending)
        return StoredProfile(profile_id, series, time_ns, n_samples, totals, created)

    def _insert_joined(self, appends: Appends, row: dict[str, Any], data: bytes, late: bool) -> tuple[int, bool]:
        """The profile's row and blob in the transaction of the new rows it brought (:class:`Appends`).

        A profile that brings new stacks paid two write transactions, its rows' and its own (a begin,
        a lock, a commit each); now one. The GC epoch needs no lock of its own here: the transaction holds
        the collection lock shared with the append locks, which keeps a collection out until commit
        (:func:`~server.store.appends.lock_all_appends`).
        """
        conn = appends.connection()
        marks: list[tuple[int, int]] = []
        if late:
            series_id, hour = row["series_id"], bucket_of(row["time_ns"], HOUR_S)
            if invalidate(conn, series_id, hour, self._late_marks):
                marks.append((series_id, hour))
        (written,) = self.profiles.insert_rows(conn, [(row, data)])
        appends.after_commit(lambda: self._late_marks.add(marks))
        return written

    def _commit(self, pending: Sequence[_Pending]) -> Sequence[tuple[int, bool] | BaseException]:
        """One transaction for profiles written at the same moment: a row never exists without its blob.

        A profile resolved under an older GC epoch may name collected ids:
        it alone is refused (and resolved again by its writer).
        """
        marks: list[tuple[int, int]] = []
        with self.engine.begin() as conn:
            current = lock_against_gc(conn)
            fresh = [i for i, p in enumerate(pending) if p.epoch == current]
            # Series in a fixed order: two batches locking the same series cannot wait on each other.
            late = {(p.row["series_id"], bucket_of(p.row["time_ns"], HOUR_S)) for p in pending if p.late}
            for series_id, hour in sorted(late):
                if invalidate(conn, series_id, hour, self._late_marks):
                    marks.append((series_id, hour))
            written = iter(self.profiles.insert_rows(conn, [(pending[i].row, pending[i].blob) for i in fresh]))
        self._late_marks.add(marks)
        return [next(written) if p.epoch == current else CachesStale(current) for p in pending]

    # -- reading, for queries ------------------------------------------------

    def read_samples(self, parts: Sequence[ProfileMeta]) -> Iterator[tuple[ProfileMeta, SampleArrays]]:
        """The stored samples of raw profiles and rollups (``width_s`` > 0), in the order given.

        Every blob is fetched up front (two queries), each decoded only when
        its turn comes. A part whose blob is gone (retention deleted it after
        the part was listed) is left out.
        """
        for part, data in self._blobs(parts):
            yield part, blob.decode(data)

    def read_leaves(self, parts: Sequence[ProfileMeta]) -> Iterator[tuple[ProfileMeta, SampleArrays, bool]]:
        """Like :meth:`read_samples`, but a rollup carrying values summed per stack node yields those:
        (part, rows, whether the rows are keyed by stack node rather than by sample key)."""
        for part, data in self._blobs(parts, with_nodes=True):
            nodes = blob.decode_nodes(data) if part.width_s else None
            if nodes is not None:
                yield part, nodes, True
            else:
                yield part, blob.decode(data), False

    def _blobs(self, parts: Sequence[ProfileMeta], with_nodes: bool = False) -> Iterator[tuple[ProfileMeta, bytes]]:
        """The parts' blobs; ``with_nodes``: rollups' node tables are read, so they must be of the node generation
        of this store's caches (:mod:`server.store.cachemarks`). Profiles' blobs name sample keys only, whose
        ids a renumbering keeps."""
        raw_parts = [p for p in parts if not p.width_s]
        times = (min(p.time_ns for p in raw_parts), max(p.time_ns for p in raw_parts)) if raw_parts else None
        raw = self.profiles.blobs([p.id for p in raw_parts], times)
        rolled = self.rollups.blobs([p.id for p in parts if p.width_s], self.dedup.marks if with_nodes else None)
        for part in parts:
            data = rolled.get(part.id) if part.width_s else raw.get(part.id)
            if data is not None:
                yield part, data

    def _node_caches(self) -> tuple[LeafNodes, CacheMarks]:
        """One set of caches for a rollup build: its keys' leaf nodes, and what it was filled under (a set a read
        found out of date is replaced first, as for a query)."""
        caches = self._fresh_caches()
        keys = caches.sample_keys
        return (lambda ids: keys.resolve(ids)[0]), caches.marks

    def sample_identities(self, keys: IntArray) -> tuple[IntArray, IntArray]:
        """The stack node (its leaf) and label set of every sample key, including keys other processes wrote."""
        return self.dedup.sample_keys.resolve(keys)

    def label_sets(self, ids: Iterable[int]) -> dict[int, LabelsetKey]:
        """Sample label sets by id: (string labels, numeric labels), each sorted."""
        return self.dedup.labelsets.get(ids)
