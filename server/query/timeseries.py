"""Trend lines from stored per-profile totals (never from samples): goroutine counts, CPU, heap over time.

Without a ``step``, about 240 points, but never a step finer than the series'
own interval (learnt from the gaps between their newest profiles): a step
without a profile breaks the line. Within each series, the profiles in a step
are aggregated over time (avg,
sum or max); the series of one ``group_by`` group are then added up, so
``group_by=service`` gives a fleet total. Steps that are whole hours read
hourly and daily rollup rows (their totals, counts and maxima); finer steps
read the raw profile rows, up to a limit that says so when it is reached.
Filtering or grouping by pprof sample labels needs the samples themselves,
so those trends read profile (or rollup) blobs instead of totals.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from server.errors import InvalidParameter, TooExpensive
from server.pprof.checked import bounded, grouped_sums, holds_saturated
from server.query.aggregate import labelset_filter, resolve_sample, sample_columns, split_selector
from server.query.overflow import SumGuard, overflow
from server.query.plan import plan
from server.query.request import ProfileQuery
from server.query.selector import Selector
from server.settings import Settings
from server.store.profiles import Shape, TooManyRows
from server.store.repository import Store
from server.store.rollups import DAY_S, HOUR_S, NS
from server.store.series import SeriesInfo
from server.store.totals import IntArray, SumOverflow, count_raw, raw_cells, recent_gaps, rollup_cells
from server.syntax.times import parse_duration_ns

AGGREGATIONS = ("avg", "sum", "max")


@dataclass(slots=True)
class TrendLine:
    """One group's line: its labels and ``[unix seconds of the step's start, value]`` for the steps with data."""

    labels: dict[str, str]
    points: list[list[float]]


@dataclass(frozen=True, slots=True)
class Trend:
    """Trend lines and how they were drawn: the step in seconds, the sample type and unit, the aggregation."""

    step_s: float
    sample_type: str | None  # the one asked for (or none) when no series matched
    unit: str
    aggregation: str
    series: list[TrendLine]


#: Steps chosen for a series' interval: the first at least the interval, so every step holds a profile.
NICE_STEPS_S = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 21600, 43200, 86400)
#: Series looked at to learn the interval (spread over the matched ones), and the slack for scrape jitter.
INTERVAL_SERIES = 16
INTERVAL_SLACK = 1.05


def series_interval_ns(store: Store, series_ids: list[int], start_ns: int, end_ns: int) -> int | None:
    """How often the series get a profile: the median gap between their newest raw profiles in the range."""
    if not series_ids:
        return None
    picks = sorted({series_ids[i] for i in np.linspace(0, len(series_ids) - 1, INTERVAL_SERIES).astype(int)})
    gaps = recent_gaps(store.engine, picks, start_ns, end_ns)
    gaps = gaps[gaps > 0]
    return int(np.median(gaps)) if gaps.size else None


def step_for_interval(interval_ns: int) -> int:
    """The smallest round step that holds a profile every time, scrape jitter included (15 s scrapes: 20 s)."""
    want = interval_ns * INTERVAL_SLACK
    for seconds in NICE_STEPS_S:
        if seconds * NS >= want:
            return seconds * NS
    return -(-int(want) // (DAY_S * NS)) * DAY_S * NS


def choose_step(start_ns: int, end_ns: int, step: str | None, max_points: int, interval_ns: int | None = None) -> int:
    """The given step, or about 240 points, never finer than ``interval_ns`` (the series' own interval).

    Steps finer than the interval leave steps without a profile, and the lines come out dashed.
    """
    if step:
        step_ns = parse_duration_ns(step, "step")
        if step_ns <= 0:
            raise InvalidParameter("step", "must be positive")
    else:  # about 240 points, rounded up to a whole second
        step_ns = max(NS, -(-(end_ns - start_ns) // 240 // NS) * NS)
        if interval_ns is not None:
            step_ns = max(step_ns, step_for_interval(interval_ns))
    points = (end_ns - start_ns) // step_ns + 1
    if points > max_points:
        raise InvalidParameter("step", f"{step} over this range gives {points} points; the maximum is {max_points}")
    return step_ns


def timeseries(
    store: Store, settings: Settings, query: ProfileQuery, step: str | None, group_by: list[str], aggregation: str
) -> Trend:
    if aggregation not in AGGREGATIONS:
        raise InvalidParameter("aggregation", f"{aggregation!r} is not one of {', '.join(AGGREGATIONS)}")
    start_ns, end_ns = query.start_ns, query.end_ns + 1
    matched, sample_selector = split_selector(store, query)
    series = {s.id: s for s in matched}
    interval_ns = None if step else series_interval_ns(store, sorted(series), start_ns, end_ns)
    step_ns = choose_step(start_ns, end_ns, step, settings.max_timeseries_points, interval_ns)
    origin_ns = start_ns - start_ns % step_ns  # steps on multiples of the step, as Prometheus and Grafana draw them
    if not series:
        return Trend(step_ns / NS, query.sample, "", aggregation, [])
    series_names = {name for s in store.series.all() if s.kind == query.kind for name in s.labels}
    if sample_selector.matchers or any(name not in series_names for name in group_by):
        return samples_timeseries(
            store, settings, query, origin_ns, step_ns, group_by, aggregation, series, sample_selector
        )
    # Per stored series and step: sum, count and max of the chosen sample type.
    cells, sample_type, unit = _collect(store, settings, query, sorted(series), origin_ns, step_ns)
    sids, buckets, sums, counts, maxima = (cells[:, i] for i in range(5))
    if aggregation == "avg":
        values = sums / np.maximum(counts, 1)
    else:
        values = (sums if aggregation == "sum" else maxima).astype(np.float64)
    # Series -> group, then the series of one group are added up, cell by cell.
    group_index: dict[tuple[tuple[str, str], ...], int] = {}
    order = np.array(sorted(series), dtype=np.int64)
    group_of = np.array(
        [group_index.setdefault(_group_key(series[sid].labels, group_by), len(group_index)) for sid in order.tolist()],
        dtype=np.int64,
    )
    width = int(buckets.max(initial=0)) + 1
    keys, inverse = np.unique(group_of[np.searchsorted(order, sids)] * width + buckets, return_inverse=True)
    totals = np.zeros(keys.shape[0], dtype=np.float64)
    np.add.at(totals, inverse, values)
    groups_of_key, buckets_of_key = np.divmod(keys, width)
    times = (origin_ns + buckets_of_key * step_ns) / NS
    bounds = np.searchsorted(groups_of_key, np.arange(len(group_index) + 1))
    lines = []
    for key, g in sorted(group_index.items()):
        lo, hi = int(bounds[g]), int(bounds[g + 1])
        if hi > lo:
            points = [[t, v] for t, v in zip(times[lo:hi].tolist(), totals[lo:hi].tolist(), strict=True)]
            lines.append(TrendLine(dict(key), points))
    return Trend(step_ns / NS, sample_type, unit, aggregation, lines)


def _group_key(labels: dict[str, str], group_by: list[str]) -> tuple[tuple[str, str], ...]:
    if group_by:
        return tuple(sorted((name, labels.get(name, "")) for name in group_by))
    return tuple(sorted(labels.items()))


def _answer(
    groups: dict[tuple[tuple[str, str], ...], dict[int, float]],
    start_ns: int,
    step_ns: int,
    sample_type: str,
    unit: str,
    aggregation: str,
) -> Trend:
    result = [
        TrendLine(dict(key), [[(start_ns + bucket * step_ns) / NS, value] for bucket, value in sorted(points.items())])
        for key, points in sorted(groups.items())
    ]
    return Trend(step_ns / NS, sample_type, unit, aggregation, result)


def samples_timeseries(
    store: Store,
    settings: Settings,
    query: ProfileQuery,
    origin_ns: int,
    step_ns: int,
    group_by: list[str],
    aggregation: str,
    series: dict[int, SeriesInfo],
    sample_selector: Selector,
) -> Trend:
    """Trends that split or filter by pprof sample labels: read from the samples, not the totals.

    ``max`` needs each profile on its own, so it reads raw profiles; ``avg``
    and ``sum`` may use hourly rollups when the step is whole hours.
    """
    start_ns, end_ns = query.start_ns, query.end_ns + 1
    whole_hours = step_ns % (HOUR_S * NS) == 0  # then every step is whole hours from origin: no rollup straddles two
    use_rollups = query.rollups and whole_hours and aggregation != "max"
    parts = plan(
        store, list(series), start_ns, end_ns, settings.max_query_profiles, rollups=use_rollups, max_width_s=HOUR_S
    )
    sample_type, unit = resolve_sample(parts, query.sample)
    # cell -> [sum, profiles, max of per-profile sums]; a cell is (series, step, group).
    cells: dict[tuple[int, int, tuple[tuple[str, str], ...]], list[float]] = {}
    profiles_in: dict[tuple[int, int], int] = defaultdict(int)
    for part, keys, part_values in sample_columns(store, parts, sample_type):
        bucket = (part.time_ns - origin_ns) // step_ns
        profiles_in[(part.series_id, bucket)] += part.profiles
        SumGuard(sample_type).add(part_values)  # summed per label set here; across parts in Python's integers
        _, labelsets = store.sample_identities(keys)
        values = part_values
        if sample_selector.matchers:
            keep = labelset_filter(store, labelsets, sample_selector)
            labelsets, values = labelsets[keep], values[keep]
        distinct, inverse = np.unique(labelsets, return_inverse=True)
        sums = np.zeros(distinct.shape[0], dtype=np.int64)
        np.add.at(sums, inverse, values)
        known = store.label_sets(distinct.tolist())
        per_group: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        for labelset, total in zip(distinct.tolist(), sums.tolist(), strict=True):
            labels = {**dict(known.get(labelset, ((), ()))[0]), **series[part.series_id].labels}
            per_group[_group_key(labels, group_by)] += total
        for key, total in per_group.items():
            cell = cells.setdefault((part.series_id, bucket, key), [0, 0, total])
            cell[0] += total
            cell[2] = max(cell[2], total)
    groups: dict[tuple[tuple[str, str], ...], dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for (sid, bucket, key), (cell_total, _, peak) in cells.items():
        count = profiles_in[(sid, bucket)]
        if aggregation == "avg":
            groups[key][bucket] += cell_total / count
        else:
            groups[key][bucket] += cell_total if aggregation == "sum" else peak
    return _answer(groups, origin_ns, step_ns, sample_type, unit, aggregation)


def _collect(
    store: Store, settings: Settings, query: ProfileQuery, series_ids: list[int], origin_ns: int, step_ns: int
) -> tuple[IntArray, str, str]:
    """Cells of (series, step, sum, count, max), one per series and step with data.

    Whole-hour steps read rollup buckets where they exist and raw profiles for
    the rest of each series' range (the edges of the range, the open hour,
    late data not yet rolled up); other steps read raw profiles. The database
    does the per-row work (:mod:`server.store.totals`).
    """
    start_ns, end_ns = query.start_ns, query.end_ns + 1
    index_by_shape = _sample_indexes(store, query.sample)
    parts: list[IntArray] = []  # (series, shape, step, count, sum, max, missing)
    gaps: dict[tuple[tuple[int, int], ...], list[int]] = {((start_ns, end_ns),): list(series_ids)}
    width_ns = (DAY_S if step_ns % (DAY_S * NS) == 0 else HOUR_S) * NS
    # A rollup bucket must fall inside one step: steps of whole buckets, starting on a bucket boundary.
    if step_ns % (HOUR_S * NS) == 0 and origin_ns % width_ns == 0 and query.rollups:
        first = -(-start_ns // width_ns) * width_ns  # whole buckets inside the range
        n_buckets = (end_ns - first) // width_ns
        if n_buckets > 0:
            last = first + (n_buckets - 1) * width_ns
            rows = rollup_cells(store.engine, width_ns // NS, series_ids, index_by_shape, first, last)
            gaps = _uncovered(rows, series_ids, (start_ns, end_ns), first, width_ns, n_buckets)
            rows[:, 2] = (rows[:, 2] - origin_ns) // step_ns
            parts.append(rows)
    limit = settings.max_timeseries_raw_profiles
    try:
        counted = 0
        for ranges, members in gaps.items():
            for gap_start, gap_end in ranges:
                counted += count_raw(store.engine, members, gap_start, gap_end, limit - counted)
        for ranges, members in gaps.items():
            for gap_start, gap_end in ranges:
                parts.append(raw_cells(store.engine, members, index_by_shape, gap_start, gap_end, origin_ns, step_ns))
    except SumOverflow:
        raise overflow(query.sample) from None
    except TooManyRows:
        raise TooExpensive(
            f"this trend reads more than {limit} raw profiles; use a step of whole hours (1h, 1d), "
            "which reads rollups, or a shorter range"
        ) from None
    rows = np.concatenate(parts) if parts else np.zeros((0, 7), dtype=np.int64)
    sample_type, unit = _check_sample(store, rows, query.sample)
    rows = rows[rows[:, 3] > rows[:, 6]]  # drop rows whose shape lacks the sample type entirely
    if holds_saturated(rows[:, 4:6]):
        raise overflow(sample_type)  # a rollup whose total passed the 64-bit range
    # One cell per (series, step): the rollup and raw parts of a step add up.
    width = int(rows[:, 2].max(initial=0)) + 1
    cells, inverse = np.unique(rows[:, 0] * width + rows[:, 2], return_inverse=True)
    out = np.zeros((cells.shape[0], 5), dtype=np.int64)
    out[:, 0], out[:, 1] = np.divmod(cells, width)
    if bounded(rows[:, 4], rows.shape[0]):
        np.add.at(out[:, 2], inverse, rows[:, 4])  # no sum of these can leave 64 bits: the usual case
    else:
        order = np.argsort(inverse, kind="stable")
        sums, saturated = grouped_sums(rows[order, 4:5], np.flatnonzero(np.diff(inverse[order], prepend=-1)))
        if saturated:
            raise overflow(sample_type)
        out[:, 2] = sums[:, 0]
    np.add.at(out[:, 3], inverse, rows[:, 3] - rows[:, 6])
    out[:, 4] = np.iinfo(np.int64).min
    np.maximum.at(out[:, 4], inverse, rows[:, 5])
    return out, sample_type, unit


def _uncovered(
    rows: IntArray, series_ids: list[int], span: tuple[int, int], first_ns: int, width_ns: int, n_buckets: int
) -> dict[tuple[tuple[int, int], ...], list[int]]:
    """Per series, the parts of ``span`` no rollup covers, with series sharing the same parts put together.

    The whole buckets run from ``first_ns``; the span's edges before and
    after them are raw for every series. Usually every series misses just the
    edges and the open bucket, so the raw reads are one statement per range
    for the whole fleet.
    """
    start_ns, end_ns = span
    order = np.array(series_ids, dtype=np.int64)
    covered = np.zeros((order.shape[0], n_buckets), dtype=bool)
    covered[np.searchsorted(order, rows[:, 0]), (rows[:, 2] - first_ns) // width_ns] = True
    patterns, which = np.unique(covered, axis=0, return_inverse=True)
    tail = first_ns + n_buckets * width_ns
    gaps: dict[tuple[tuple[int, int], ...], list[int]] = {}
    for p, pattern in enumerate(patterns):
        edges = np.flatnonzero(np.diff(np.concatenate(([True], pattern, [True])).astype(np.int8)))
        ranges = [(first_ns + int(a) * width_ns, first_ns + int(b) * width_ns) for a, b in edges.reshape(-1, 2)]
        if start_ns < first_ns:
            if ranges and ranges[0][0] == first_ns:
                ranges[0] = (start_ns, ranges[0][1])
            else:
                ranges.insert(0, (start_ns, first_ns))
        if tail < end_ns:
            if ranges and ranges[-1][1] == tail:
                ranges[-1] = (ranges[-1][0], end_ns)
            else:
                ranges.append((tail, end_ns))
        if ranges:
            gaps[tuple(ranges)] = order[np.asarray(which).reshape(-1) == p].tolist()
    return gaps


def _sample_index(shape: Shape, sample: str | None) -> int | None:
    names = [entry.split("/", 1)[0] for entry in shape.sample_types]
    if sample is None:
        if not names:
            return None
        return names.index(shape.default_sample_type if shape.default_sample_type in names else names[-1])
    return names.index(sample) if sample in names else None


def _sample_indexes(store: Store, sample: str | None) -> dict[int, int]:
    """For every known profile shape holding the sample type (or, with none asked, its default), its position."""
    found: dict[int, int] = {}
    for shape_id, shape in store.profiles.shapes().items():
        index = _sample_index(shape, sample)
        if index is not None:
            found[shape_id] = index
    return found


def _check_sample(store: Store, rows: IntArray, sample: str | None) -> tuple[str, str]:
    """The sample type's name and unit; refuse a sample type that the matched profiles do not have."""
    sample_type, unit = sample or "", ""
    for shape_id in np.unique(rows[:, 1]).tolist():
        shape = store.profiles.shape(shape_id)
        index = _sample_index(shape, sample)
        if index is None:
            names = ", ".join(entry.split("/", 1)[0] for entry in shape.sample_types)
            raise InvalidParameter("sample", f"unknown sample type {sample!r}; this profile type has {names}")
        sample_type, _, unit = shape.sample_types[index].partition("/")
    return sample_type, unit


@dataclass(frozen=True, slots=True)
class StepSums:
    """One group's steps with data: the sum of the sample type over the step's profiles, and how many there were."""

    labels: dict[str, str]
    steps: list[int]  # index k of the step [origin + k * step, origin + (k + 1) * step)
    sums: list[float]
    profiles: list[int]


def step_sums(
    store: Store, settings: Settings, query: ProfileQuery, origin_ns: int, step_ns: int, group_by: list[str]
) -> tuple[list[StepSums], str, str]:
    """Per ``group_by`` label set (only the labels a series has) and step, the sum and the profile count.

    Unlike :func:`timeseries`, groups are keyed by the ``group_by`` labels
    alone (none: one group of everything) and the caller chooses the grid:
    ``origin_ns`` (at or before the range's start) need not be a multiple of
    the step. Rollups are read where a whole number of them fits each step;
    otherwise raw profile totals are.
    Returns the groups in label order, the sample type and its unit.
    """
    if step_ns <= 0:
        raise InvalidParameter("step", "must be positive")
    if origin_ns > query.start_ns:
        raise ValueError("the grid must start at or before the range")  # a caller's bug, not a client's
    points = (query.end_ns + 1 - origin_ns) // step_ns + 1
    if points > settings.max_timeseries_points:
        raise InvalidParameter(
            "step",
            f"{step_ns / NS:g}s over this range gives {points} points; the maximum is {settings.max_timeseries_points}",
        )
    matched, sample_selector = split_selector(store, query)
    series = {s.id: s for s in matched}
    if not series:
        return [], query.sample or "", ""
    series_names = {name for s in store.series.all() if s.kind == query.kind for name in s.labels}
    if sample_selector.matchers or any(name not in series_names for name in group_by):
        return _sample_step_sums(store, settings, query, origin_ns, step_ns, group_by, series, sample_selector)
    cells, sample_type, unit = _collect(store, settings, query, sorted(series), origin_ns, step_ns)
    groups: dict[tuple[tuple[str, str], ...], dict[int, list[float]]] = defaultdict(dict)
    for sid, bucket, total, count in cells[:, :4].tolist():
        key = _present(series[sid].labels, group_by)
        cell = groups[key].setdefault(bucket, [0.0, 0])
        cell[0] += total
        cell[1] += count
    return _step_groups(groups), sample_type, unit


def _present(labels: dict[str, str], group_by: list[str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, labels[name]) for name in group_by if name in labels))


def _step_groups(groups: dict[tuple[tuple[str, str], ...], dict[int, list[float]]]) -> list[StepSums]:
    result = []
    for key, cells in sorted(groups.items()):
        steps = sorted(cells)
        result.append(StepSums(dict(key), steps, [cells[k][0] for k in steps], [int(cells[k][1]) for k in steps]))
    return result


def _sample_step_sums(
    store: Store,
    settings: Settings,
    query: ProfileQuery,
    origin_ns: int,
    step_ns: int,
    group_by: list[str],
    series: dict[int, SeriesInfo],
    sample_selector: Selector,
) -> tuple[list[StepSums], str, str]:
    """:func:`step_sums` when a matcher or a group names pprof sample labels: read the samples.

    A profile counts once for each group it has samples in.
    """
    start_ns, end_ns = query.start_ns, query.end_ns + 1
    aligned = step_ns % (HOUR_S * NS) == 0 and origin_ns % (HOUR_S * NS) == 0
    parts = plan(
        store,
        list(series),
        start_ns,
        end_ns,
        settings.max_query_profiles,
        rollups=query.rollups and aligned,
        max_width_s=HOUR_S,
    )
    sample_type, unit = resolve_sample(parts, query.sample)
    groups: dict[tuple[tuple[str, str], ...], dict[int, list[float]]] = defaultdict(dict)
    for part, keys, part_values in sample_columns(store, parts, sample_type):
        bucket = (part.time_ns - origin_ns) // step_ns
        _, labelsets = store.sample_identities(keys)
        values = part_values
        if sample_selector.matchers:
            keep = labelset_filter(store, labelsets, sample_selector)
            labelsets, values = labelsets[keep], values[keep]
        distinct, inverse = np.unique(labelsets, return_inverse=True)
        sums = np.zeros(distinct.shape[0], dtype=np.int64)
        np.add.at(sums, inverse, values)
        known = store.label_sets(distinct.tolist())
        per_group: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        for labelset, total in zip(distinct.tolist(), sums.tolist(), strict=True):
            labels = {**dict(known.get(labelset, ((), ()))[0]), **series[part.series_id].labels}
            per_group[_present(labels, group_by)] += total
        for key, total in per_group.items():
            cell = groups[key].setdefault(bucket, [0.0, 0])
            cell[0] += total
            cell[1] += part.profiles
    return _step_groups(groups), sample_type, unit
