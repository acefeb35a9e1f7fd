"""The store: one object per database that owns the engine and the dedup caches.

``write`` turns a resolved profile into deduplicated rows: functions and stack
nodes are looked up in (or added to) their tables, and the samples become one
blob of (leaf node, labelset, values). Everything that only depends on content
is cached, so a repeat scrape of a known service costs one vectorised hash
and one dictionary lookup per sample (its pprof identity, see
:mod:`server.pprof.identity`) and one INSERT.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from server.pprof.columns import ProfileColumns
from server.pprof.frames import expand
from server.pprof.header import Header
from server.pprof.identity import sample_keys
from server.store import blob, idempotency
from server.store.alerting import AlertTables
from server.store.database import make_engine
from server.store.dumps import GoroutineTable
from server.store.groupcommit import GroupCommit
from server.store.labelsets import LabelsetKey, LabelsetTable
from server.store.profiles import ProfileTable, Shape
from server.store.registry import TargetTable, TraceTable
from server.store.rollups import HOUR_S, RollupTable, bucket_of, invalidate
from server.store.samplekeys import SampleKeyTable
from server.store.samples import aggregate
from server.store.series import SeriesInfo, SeriesTable
from server.store.stacks import StackTree
from server.store.state import lock_against_gc, read_epoch
from server.store.symbols import FunctionTable

IntArray = npt.NDArray[np.int64]


class _CachesStale(Exception):
    def __init__(self, epoch: int) -> None:
        super().__init__(f"garbage collection ran (epoch {epoch})")
        self.epoch = epoch


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
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.functions = FunctionTable(engine)
        self.stacks = StackTree(engine)
        self.labelsets = LabelsetTable(engine)
        self.series = SeriesTable(engine)
        self.profiles = ProfileTable(engine)
        self.sample_keys = SampleKeyTable(engine)
        self.rollups = RollupTable(engine, self.profiles)
        self._epoch: int | None = None
        self._commits: GroupCommit[_Pending, tuple[int, bool]] = GroupCommit(self._commit)
        self.targets = TargetTable(engine)
        self.traces = TraceTable(engine)
        self.alerts = AlertTables(engine)
        self.goroutines = GoroutineTable(engine)

    @classmethod
    def from_url(cls, url: str, pool_size: int = 20) -> Store:
        return cls(make_engine(url, pool_size))

    def close(self) -> None:
        self.engine.dispose()

    def write(
        self,
        columns: ProfileColumns,
        kind: str,
        labels: dict[str, str],
        time_ns: int,
        idempotency_key: str | None = None,
        max_series_per_service: int | None = None,
    ) -> StoredProfile:
        """Store a validated profile under the series (kind, labels).

        If garbage collection ran since the caches were filled, the ids they
        hold may be gone: the store transaction notices (``gc_epoch``), and the
        profile is resolved again with empty caches.

        With an ``idempotency_key`` already stored, no profile is written and
        the stored one is returned (``created`` False). The unique index
        decides, in the writing transaction, rather than a lookup first: that
        would cost every write a query to speed up only the rare retry.
        """
        key = idempotency.digest(idempotency_key) if idempotency_key is not None else None
        if self._epoch is None:
            with self.engine.connect() as conn:
                self._epoch = read_epoch(conn)
        try:
            stored = self._write(columns, kind, labels, time_ns, key, max_series_per_service)
        except _CachesStale as stale:
            self.reset_caches()
            self._epoch = stale.epoch
            stored = self._write(columns, kind, labels, time_ns, key, max_series_per_service)
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

    def reset_caches(self) -> None:
        """Forget every cached id (after garbage collection, here or in another process)."""
        self.functions = FunctionTable(self.engine)
        self.stacks = StackTree(self.engine)
        self.labelsets = LabelsetTable(self.engine)
        self.sample_keys = SampleKeyTable(self.engine)
        self._epoch = None

    def _write(
        self,
        columns: ProfileColumns,
        kind: str,
        labels: dict[str, str],
        time_ns: int,
        key: str | None,
        max_series_per_service: int | None,
    ) -> StoredProfile:
        header = Header.of(columns)
        n_types = len(header.sample_types)
        n_samples = columns.sample_loc_offsets.shape[0] - 1
        values = columns.sample_values.reshape(n_samples, n_types)
        # The series first: a series past its service's limit is refused before any stack is written.
        series = self.series.get_or_create(kind, labels, max_series_per_service)
        keys = self._sample_keys(columns)
        arrays = aggregate(keys, values)
        totals = [int(v) for v in values.sum(axis=0)] if n_samples else [0] * n_types
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
        profile_id, created = self._commits.submit(_Pending(row, blob.encode(arrays), self._epoch, late))
        return StoredProfile(profile_id, series, time_ns, n_samples, totals, created)

    def _commit(self, pending: Sequence[_Pending]) -> Sequence[tuple[int, bool] | BaseException]:
        """One transaction for profiles written at the same moment: a row never exists without its blob.

        A profile resolved under an older GC epoch may name collected ids:
        it alone is refused (and resolved again by its writer).
        """
        with self.engine.begin() as conn:
            current = lock_against_gc(conn)
            fresh = [i for i, p in enumerate(pending) if p.epoch == current]
            # Series in a fixed order: two batches locking the same series cannot wait on each other.
            for series_id, time_ns in sorted({(p.row["series_id"], p.row["time_ns"]) for p in pending if p.late}):
                invalidate(conn, series_id, time_ns)
            written = iter(self.profiles.insert_rows(conn, [(pending[i].row, pending[i].blob) for i in fresh]))
        return [next(written) if p.epoch == current else _CachesStale(current) for p in pending]

    def _sample_keys(self, columns: ProfileColumns) -> IntArray:
        """The sample-key id of every sample: one hash and one dictionary lookup each once known."""
        function_ids = self._function_ids(columns)
        labelsets = self._labelsets(columns)
        hashes = sample_keys(columns, function_ids, labelsets).view(np.int64).tolist()
        found = self.sample_keys.lookup(hashes)
        missing = [position for position, key in enumerate(found) if key is None]
        if missing:
            nodes = self._leaf_nodes(columns, function_ids)
            created = self.sample_keys.create(
                [hashes[p] for p in missing], nodes[missing].tolist(), labelsets[missing].tolist()
            )
            for position, key in zip(missing, created, strict=True):
                found[position] = key
        return np.array(found, dtype=np.int64)

    def _function_ids(self, columns: ProfileColumns) -> IntArray:
        """Database ids of the profile's functions, by position in its function columns."""
        if columns.function_id.size == 0:
            return np.zeros(0, dtype=np.int64)
        pick = columns.strings.__getitem__
        keys = list(
            zip(
                map(pick, columns.function_name.tolist()),
                map(pick, columns.function_system_name.tolist()),
                map(pick, columns.function_filename.tolist()),
                strict=True,
            )
        )
        ids = self.functions.ids(keys, columns.function_start_line.tolist())
        return np.array(ids, dtype=np.int64)

    def _leaf_nodes(self, columns: ProfileColumns, function_ids: IntArray) -> IntArray:
        """The stack node of every sample: cached by the bytes of its frame ids, walked on a miss."""
        frames = expand(columns)
        frame_ids = function_ids[frames.functions] if frames.functions.size else frames.functions
        raw = frame_ids.astype("<i8").tobytes()
        bounds = (frames.offsets * 8).tolist()
        keys = [raw[start:end] for start, end in itertools.pairwise(bounds)]
        found = list(map(self.stacks.cached_stack, keys))
        missing_at = [position for position, node in enumerate(found) if node is None]
        nodes = np.array([0 if node is None else node for node in found], dtype=np.int64)
        if missing_at:
            missing_keys = [keys[p] for p in missing_at]
            offsets = frames.offsets
            stacks = [frame_ids[offsets[p] : offsets[p + 1]][::-1].tolist() for p in missing_at]
            nodes[missing_at] = self.stacks.resolve(missing_keys, stacks)
        return nodes

    def _labelsets(self, columns: ProfileColumns) -> IntArray:
        """Labelset ids per sample (0: none); distinct label index runs are resolved once per profile."""
        offsets = columns.sample_label_offsets
        n_samples = offsets.shape[0] - 1
        result = np.zeros(n_samples, dtype=np.int64)
        labelled = np.flatnonzero(np.diff(offsets) > 0)
        if labelled.size == 0:
            return result
        strings = columns.strings
        stacked = np.stack([columns.label_key, columns.label_str, columns.label_num, columns.label_num_unit], axis=1)
        raw = stacked.astype("<i8").tobytes()
        starts, ends = offsets[labelled].tolist(), offsets[labelled + 1].tolist()
        local: dict[bytes, int] = {}
        per_sample: list[int] = []
        keys: list[LabelsetKey] = []
        for start, end in zip(starts, ends, strict=True):
            run = raw[start * 32 : end * 32]
            slot = local.get(run)
            if slot is None:
                slot = local[run] = len(keys)
                string_labels: list[tuple[str, str]] = []
                num_labels: list[tuple[str, int, str]] = []
                for key, value, number, unit in stacked[start:end].tolist():
                    if value:
                        string_labels.append((strings[key], strings[value]))
                    elif number or unit:
                        num_labels.append((strings[key], number, strings[unit]))
                keys.append((tuple(sorted(string_labels)), tuple(sorted(num_labels))))
            per_sample.append(slot)
        ids = np.array(self.labelsets.ids(keys), dtype=np.int64)
        result[labelled] = ids[per_sample]
        return result
