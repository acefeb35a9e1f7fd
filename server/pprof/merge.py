"""Merge, scale, diff and delta of resolved profiles.

Samples are keyed by content, as ``go tool pprof`` keys them: the stack (each
location's address and its lines' functions and line numbers) plus the
sample's labels. Samples whose values all end up zero are dropped, and
samples with an empty stack are dropped from a merge, because pprof drops
them too and merged totals must match its output.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from server.pprof.errors import MalformedProfileError
from server.pprof.model import Function, Line, Location, Profile, Sample

# The mapping's file is part of a location's identity: unsymbolized locations are named after it.
_LocationKey = tuple[int, str | None, tuple[tuple[tuple[str, str, str], int], ...]]
_SampleKey = tuple[tuple[_LocationKey, ...], tuple[tuple[str, str], ...], tuple[tuple[str, int, str], ...]]


class _Interner:
    """Shares one Function and Location object per content across merged profiles."""

    def __init__(self) -> None:
        self.functions: dict[tuple[str, str, str], Function] = {}
        self.locations: dict[_LocationKey, Location] = {}
        self.location_keys: dict[int, _LocationKey] = {}

    def location(self, location: Location) -> tuple[_LocationKey, Location]:
        cached = self.location_keys.get(id(location))
        if cached is not None:
            return cached, self.locations[cached]
        mapping_file = None if location.mapping is None else location.mapping.filename
        lines_key = tuple((line.function.key(), line.line) for line in location.lines)
        key: _LocationKey = (location.address, mapping_file, lines_key)
        shared = self.locations.get(key)
        if shared is None:
            lines = tuple(Line(self.function(line.function), line.line) for line in location.lines)
            shared = self.locations[key] = Location(lines, location.address, len(self.locations) + 1, location.mapping)
        self.location_keys[id(location)] = key
        return key, shared

    def function(self, function: Function) -> Function:
        key = function.key()
        shared = self.functions.get(key)
        if shared is None:
            shared = self.functions[key] = Function(*key, start_line=function.start_line)
        return shared


def check_compatible(profiles: Sequence[Profile]) -> None:
    """Raise unless every profile has the first one's sample types and period type."""
    first = profiles[0]
    for other in profiles[1:]:
        if other.sample_types != first.sample_types:
            raise MalformedProfileError(
                "incompatible profiles: sample types "
                f"{[str(v) for v in first.sample_types]} and {[str(v) for v in other.sample_types]}"
            )
        if other.period_type != first.period_type:
            raise MalformedProfileError("incompatible profiles: different period types")


def merge(profiles: Sequence[Profile]) -> Profile:
    """Sum compatible profiles sample by sample, keyed by stack and labels."""
    if not profiles:
        raise ValueError("merge needs at least one profile")
    check_compatible(profiles)
    interner = _Interner()
    merged: dict[_SampleKey, tuple[tuple[Location, ...], list[int], Sample]] = {}
    for profile in profiles:
        for sample in profile.samples:
            if not sample.locations:
                continue
            pairs = [interner.location(location) for location in sample.locations]
            key: _SampleKey = (tuple(p[0] for p in pairs), sample.labels, sample.num_labels)
            entry = merged.get(key)
            if entry is None:
                merged[key] = (tuple(p[1] for p in pairs), list(sample.values), sample)
            else:
                values = entry[1]
                for index, value in enumerate(sample.values):
                    values[index] += value
    samples = [
        Sample(locations, tuple(values), original.labels, original.num_labels)
        for locations, values, original in merged.values()
        if any(values)
    ]
    first = profiles[0]
    times = [p.time_nanos for p in profiles if p.time_nanos]
    return replace(
        first,
        samples=samples,
        time_nanos=min(times) if times else 0,
        duration_nanos=sum(p.duration_nanos for p in profiles),
        period=max(p.period for p in profiles),
        comments=list(first.comments),
        locations=list(interner.locations.values()),
        functions=list(interner.functions.values()),
    )


def round_half_away(value: float) -> int:
    """Round as Go's ``math.Round`` does: halves away from zero."""
    if value >= 0:
        return int(value + 0.5)
    return -int(-value + 0.5)


def scale(profile: Profile, ratio: float) -> Profile:
    """Multiply every value by ``ratio`` (rounded half away from zero), dropping zeroed samples."""
    samples: list[Sample] = []
    for sample in profile.samples:
        values = tuple(round_half_away(v * ratio) for v in sample.values)
        if any(values):
            samples.append(Sample(sample.locations, values, sample.labels, sample.num_labels))
    return replace(profile, samples=samples, locations=[], functions=[])


def negate(profile: Profile) -> Profile:
    return replace(
        profile,
        samples=[Sample(s.locations, tuple(-v for v in s.values), s.labels, s.num_labels) for s in profile.samples],
    )


def diff(base: Profile, new: Profile) -> Profile:
    """``new - base`` as ``go tool pprof -diff_base`` computes it: negate the base and merge."""
    return merge([new, negate(base)])


#: Sample types that are snapshots even inside cumulative profiles: their deltas may go down.
GAUGE_SAMPLE_TYPES = frozenset({"inuse_objects", "inuse_space"})


def delta(previous: Profile, current: Profile) -> Profile | None:
    """``current - previous`` for cumulative profiles (allocs, mutex, block), as Go's ``?seconds=`` computes it.

    Returns ``None`` when a cumulative counter went down: the process
    restarted between the two snapshots, and the caller decides what to store
    (the new snapshot is the delta since the restart). ``inuse_*`` values are
    snapshots, so their differences may be negative, as in Go's own deltas.
    """
    result = merge([current, negate(previous)])
    counters = [i for i, vt in enumerate(result.sample_types) if vt.type not in GAUGE_SAMPLE_TYPES]
    if any(sample.values[i] < 0 for sample in result.samples for i in counters):
        return None
    return replace(result, time_nanos=current.time_nanos, duration_nanos=current.time_nanos - previous.time_nanos)


def total(profiles: Iterable[Profile], index: int) -> int:
    return sum(sample.values[index] for profile in profiles for sample in profile.samples)
