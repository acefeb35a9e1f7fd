"""Trend lines from stored per-profile totals (never from samples): goroutine counts, CPU, heap over time.

Within each series, the profiles in a step are aggregated over time (avg,
sum or max); the series of one ``group_by`` group are then added up, so
``group_by=service`` gives a fleet total. Steps that are whole hours read
hourly and daily rollup rows (their totals, counts and maxima); finer steps
read the raw profile rows, up to a limit that says so when it is reached.
Filtering or grouping by pprof sample labels needs the samples themselves,
so those trends read profile (or rollup) blobs instead of totals.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from server.errors import InvalidParameter, TooExpensive
from server.query.merge import labelset_filter, resolve_sample, sample_columns, split_selector
from server.query.plan import plan, subtract
from server.query.request import ProfileQuery
from server.query.selector import Selector
from server.settings import Settings
from server.store.profiles import TooManyRows, totals_rows
from server.store.repository import Store
from server.store.rollups import DAY_S, HOUR_S, NS
from server.store.series import SeriesInfo
from server.timeparse import parse_duration_ns

AGGREGATIONS = ("avg", "sum", "max")


def choose_step(start_ns: int, end_ns: int, step: str | None, max_points: int) -> int:
    if step:
        step_ns = parse_duration_ns(step, "step")
        if step_ns <= 0:
            raise InvalidParameter("step", "must be positive")
    else:  # about 240 points, rounded up to a whole second
        step_ns = max(NS, -(-(end_ns - start_ns) // 240 // NS) * NS)
    points = (end_ns - start_ns) // step_ns + 1
    if points > max_points:
        raise InvalidParameter("step", f"{step} over this range gives {points} points; the maximum is {max_points}")
    return step_ns


def timeseries(
    store: Store, settings: Settings, query: ProfileQuery, step: str | None, group_by: list[str], aggregation: str
) -> dict[str, Any]:
    if aggregation not in AGGREGATIONS:
        raise InvalidParameter("aggregation", f"{aggregation!r} is not one of {', '.join(AGGREGATIONS)}")
    start_ns, end_ns = query.start_ns, query.end_ns + 1
    step_ns = choose_step(start_ns, end_ns, step, settings.max_timeseries_points)
    matched, sample_selector = split_selector(store, query)
    series = {s.id: s for s in matched}
    if not series:
        return {"step": step_ns / NS, "sample_type": query.sample, "unit": "", "aggregation": aggregation, "series": []}
    series_names = {name for s in store.series.all() if s.kind == query.kind for name in s.labels}
    if sample_selector.matchers or any(name not in series_names for name in group_by):
        return samples_timeseries(store, settings, query, step_ns, group_by, aggregation, series, sample_selector)
    # Per stored series and step: sum, count and max of the chosen sample type.
    ids, times, sums, counts, maxima, sample_type, unit = _collect(store, settings, query, list(series), step_ns)
    buckets = (times - start_ns) // step_ns
    cells, inverse = np.unique(ids * (buckets.max(initial=0) + 1) + buckets, return_inverse=True)
    cell_sum = np.zeros(cells.shape[0], dtype=np.int64)
    cell_count = np.zeros(cells.shape[0], dtype=np.int64)
    cell_max = np.full(cells.shape[0], np.iinfo(np.int64).min, dtype=np.int64)
    np.add.at(cell_sum, inverse, sums)
    np.add.at(cell_count, inverse, counts)
    np.maximum.at(cell_max, inverse, maxima)
    width = buckets.max(initial=0) + 1
    if aggregation == "avg":
        values = cell_sum / cell_count
    else:
        values = (cell_sum if aggregation == "sum" else cell_max).astype(np.float64)
    groups: dict[tuple[tuple[str, str], ...], dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for cell, value in zip(cells.tolist(), values.tolist(), strict=True):
        sid, bucket = divmod(cell, int(width))
        groups[_group_key(series[sid].labels, group_by)][bucket] += value
    return _answer(groups, start_ns, step_ns, sample_type, unit, aggregation)


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
) -> dict[str, Any]:
    result = [
        {
            "labels": dict(key),
            "points": [[(start_ns + bucket * step_ns) / NS, value] for bucket, value in sorted(points.items())],
        }
        for key, points in sorted(groups.items())
    ]
    return {
        "step": step_ns / NS,
        "sample_type": sample_type,
        "unit": unit,
        "aggregation": aggregation,
        "series": result,
    }


def samples_timeseries(
    store: Store,
    settings: Settings,
    query: ProfileQuery,
    step_ns: int,
    group_by: list[str],
    aggregation: str,
    series: dict[int, SeriesInfo],
    sample_selector: Selector,
) -> dict[str, Any]:
    """Trends that split or filter by pprof sample labels: read from the samples, not the totals.

    ``max`` needs each profile on its own, so it reads raw profiles; ``avg``
    and ``sum`` may use hourly rollups when the step is whole hours.
    """
    start_ns, end_ns = query.start_ns, query.end_ns + 1
    whole_hours = step_ns % (HOUR_S * NS) == 0 and start_ns % (HOUR_S * NS) == 0
    use_rollups = query.rollups and whole_hours and aggregation != "max"
    parts = plan(
        store, list(series), start_ns, end_ns, settings.max_query_profiles, rollups=use_rollups, max_width_s=HOUR_S
    )
    sample_type, unit = resolve_sample(parts, query.sample)
    # cell -> [sum, profiles, max of per-profile sums]; a cell is (series, step, group).
    cells: dict[tuple[int, int, tuple[tuple[str, str], ...]], list[float]] = {}
    profiles_in: dict[tuple[int, int], int] = defaultdict(int)
    for part, keys, part_values in sample_columns(store, parts, sample_type):
        bucket = (part.time_ns - start_ns) // step_ns
        profiles_in[(part.series_id, bucket)] += part.profiles
        _, labelsets = store.sample_keys.resolve(keys)
        values = part_values
        if sample_selector.matchers:
            keep = labelset_filter(store, labelsets, sample_selector)
            labelsets, values = labelsets[keep], values[keep]
        distinct, inverse = np.unique(labelsets, return_inverse=True)
        sums = np.zeros(distinct.shape[0], dtype=np.int64)
        np.add.at(sums, inverse, values)
        known = store.labelsets.get(distinct.tolist())
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
    return _answer(groups, start_ns, step_ns, sample_type, unit, aggregation)


def _collect(
    store: Store, settings: Settings, query: ProfileQuery, series_ids: list[int], step_ns: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, str, str]:
    start_ns, end_ns = query.start_ns, query.end_ns + 1
    rows: list[tuple[int, int, int, int, int, int]] = []  # series, shape, time, sum, count, max
    hour = HOUR_S * NS
    covered: dict[int, list[tuple[int, int]]] = defaultdict(list)
    aligned = step_ns % hour == 0 and (start_ns - 0) % hour == 0
    if aligned and query.rollups:
        width = DAY_S if step_ns % (DAY_S * NS) == 0 and start_ns % (DAY_S * NS) == 0 else HOUR_S
        last = end_ns - width * NS
        if last >= start_ns:
            for meta in store.rollups.list(series_ids, width, start_ns, last):
                covered[meta.series_id].append((meta.time_ns, meta.time_ns + width * NS))
                peaks = meta.max_totals or meta.totals
                for index, (total, peak) in enumerate(zip(meta.totals, peaks, strict=True)):
                    rows.append((meta.series_id, meta.shape_id * 16 + index, meta.time_ns, total, meta.profiles, peak))
    gaps: dict[tuple[int, int], list[int]] = defaultdict(list)
    for sid in series_ids:
        for gap in subtract((start_ns, end_ns), covered[sid]):
            gaps[gap].append(sid)
    limit = settings.max_timeseries_raw_profiles
    raw: list[tuple[Any, ...]] = []
    try:
        for (gap_start, gap_end), members in gaps.items():
            raw.extend(totals_rows(store.engine, members, gap_start, gap_end, limit - len(raw)))
    except TooManyRows:
        raise TooExpensive(
            f"this trend reads more than {limit} raw profiles; use a step of whole hours (1h, 1d), "
            "which reads rollups, or a shorter range"
        ) from None
    for sid, shape_id, time_ns, totals in raw:
        for index, total in enumerate(totals):
            rows.append((sid, shape_id * 16 + index, time_ns, int(total), 1, int(total)))
    # Keep the chosen sample type: by name per shape.
    wanted, sample_type, unit = _sample_columns(store, {r[1] // 16 for r in rows}, query.sample)
    kept = [r for r in rows if r[1] in wanted]
    array = np.array([[r[0], r[2], r[3], r[4], r[5]] for r in kept], dtype=np.int64).reshape(-1, 5)
    return array[:, 0], array[:, 1], array[:, 2], array[:, 3], array[:, 4], sample_type, unit


def _sample_columns(store: Store, shape_ids: set[int], sample: str | None) -> tuple[set[int], str, str]:
    wanted: set[int] = set()
    sample_type, unit = sample or "", ""
    for shape_id in sorted(shape_ids):
        shape = store.profiles.shape(shape_id)
        names = [entry.split("/", 1)[0] for entry in shape.sample_types]
        if sample is None:
            default = shape.default_sample_type if shape.default_sample_type in names else names[-1]
            index = names.index(default)
        elif sample in names:
            index = names.index(sample)
        else:
            raise InvalidParameter(
                "sample", f"unknown sample type {sample!r}; this profile type has {', '.join(names)}"
            )
        wanted.add(shape_id * 16 + index)
        sample_type, _, unit = shape.sample_types[index].partition("/")
    return wanted, sample_type, unit
