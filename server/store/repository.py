"""The store: one object per database that owns the engine and the dedup caches.

``write`` turns a resolved profile into deduplicated rows: functions and stack
nodes are looked up in (or added to) their tables, and the samples become one
blob of (leaf node, labelset, values). Everything that only depends on content
is cached, so a repeat scrape of a known service costs two dictionary lookups
per sample and one INSERT of the profile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine

from server.pprof.model import Location, Profile
from server.store import blob
from server.store.database import make_engine
from server.store.labelsets import LabelsetKey, LabelsetTable
from server.store.profiles import insert_profile
from server.store.series import SeriesInfo, SeriesTable
from server.store.stacks import StackTree
from server.store.symbols import FunctionTable


@dataclass(frozen=True, slots=True)
class StoredProfile:
    id: int
    series: SeriesInfo
    time_ns: int
    samples: int
    totals: list[int]


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.functions = FunctionTable(engine)
        self.stacks = StackTree(engine)
        self.labelsets = LabelsetTable(engine)
        self.series = SeriesTable(engine)
        # Location contents (root-first function ids within one location) interned to small ints,
        # so a stack's cache key is a short tuple of ints.
        self._location_keys: dict[tuple[int, ...], int] = {}
        self._location_frames: list[tuple[int, ...]] = []

    @classmethod
    def from_url(cls, url: str) -> Store:
        return cls(make_engine(url))

    def close(self) -> None:
        self.engine.dispose()

    def write(self, profile: Profile, kind: str, labels: dict[str, str], time_ns: int) -> StoredProfile:
        """Store a validated profile under the series (kind, labels)."""
        nodes = self._leaf_nodes(profile)
        labelsets = self._labelsets(profile)
        n_types = len(profile.sample_types)
        values = np.array([s.values for s in profile.samples], dtype=np.int64).reshape(len(profile.samples), n_types)
        arrays = blob.aggregate(nodes, labelsets, values)
        totals = [int(v) for v in values.sum(axis=0)] if len(profile.samples) else [0] * n_types
        series = self.series.get_or_create(kind, labels)
        period_type = str(profile.period_type) if profile.period_type else ""
        row = {
            "series_id": series.id,
            "time_ns": time_ns,
            "duration_ns": profile.duration_nanos,
            "period": profile.period,
            "period_type": period_type,
            "sample_types": ",".join(str(v) for v in profile.sample_types),
            "default_sample_type": profile.default_sample_type,
            "samples": len(profile.samples),
            "totals": totals,
        }
        profile_id = insert_profile(self.engine, row, blob.encode(arrays))
        return StoredProfile(profile_id, series, time_ns, len(profile.samples), totals)

    def _location_ids(self, profile: Profile) -> dict[Location, int]:
        """Intern each location's frames (functions, root first) to a small int."""
        locations = profile.all_locations()
        functions = profile.all_functions()
        function_ids = self.functions.ids([f.key() for f in functions], [f.start_line for f in functions])
        by_function = {id(f): fid for f, fid in zip(functions, function_ids, strict=True)}
        interned: dict[Location, int] = {}
        keys = self._location_keys
        for location in locations:
            frames = tuple(by_function[id(line.function)] for line in reversed(location.lines))
            key = keys.get(frames)
            if key is None:
                key = keys[frames] = len(self._location_frames)
                self._location_frames.append(frames)
            interned[location] = key
        return interned

    def _leaf_nodes(self, profile: Profile) -> np.ndarray:
        interned = self._location_ids(profile)
        lookup = interned.__getitem__
        cached = self.stacks.cached_stack
        nodes = np.zeros(len(profile.samples), dtype=np.int64)
        missing_at: list[int] = []
        missing_keys: list[tuple[int, ...]] = []
        for position, sample in enumerate(profile.samples):
            key = tuple(map(lookup, sample.locations))
            node = cached(key)
            if node is None:
                missing_at.append(position)
                missing_keys.append(key)
            else:
                nodes[position] = node
        if missing_keys:
            frames = self._location_frames
            stacks = [[f for loc in reversed(key) for f in frames[loc]] for key in missing_keys]
            resolved = self.stacks.resolve(missing_keys, stacks)
            nodes[missing_at] = resolved
        return nodes

    def _labelsets(self, profile: Profile) -> np.ndarray:
        result = np.zeros(len(profile.samples), dtype=np.int64)
        labelled = [(i, (s.labels, s.num_labels)) for i, s in enumerate(profile.samples) if s.labels or s.num_labels]
        if labelled:
            keys: list[LabelsetKey] = [key for _, key in labelled]
            result[[i for i, _ in labelled]] = self.labelsets.ids(keys)
        return result
