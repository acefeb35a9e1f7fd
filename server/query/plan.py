"""Which stored rows answer a time range: daily and hourly rollups for whole buckets, raw profiles at the edges.

A rollup exists only while it is complete (late data deletes it until it is
rebuilt), so the plan's result is exactly the raw profiles' result; it just
reads hundreds of rows for a month instead of hundreds of thousands.
"""

from __future__ import annotations

from collections import defaultdict

from server.errors import TooExpensive
from server.store.profiles import ProfileMeta
from server.store.repository import Store
from server.store.rollups import DAY_S, HOUR_S, NS

Interval = tuple[int, int]


def _whole_buckets(start_ns: int, end_ns: int, width_s: int) -> list[int]:
    width = width_s * NS
    first = -(-start_ns // width) * width
    return list(range(first, end_ns - width + 1, width))


def subtract(interval: Interval, covered: list[Interval]) -> list[Interval]:
    result: list[Interval] = []
    cursor, end = interval
    for start, stop in sorted(covered):
        if start > cursor:
            result.append((cursor, min(start, end)))
        cursor = max(cursor, stop)
        if cursor >= end:
            break
    if cursor < end:
        result.append((cursor, end))
    return [(a, b) for a, b in result if a < b]


def _hour_ranges(
    series_ids: list[int], hours: list[int], days: list[int], rolled_days: dict[int, set[int]]
) -> list[tuple[list[int], int, int]]:
    """Which hourly rollups to read: (series, first bucket, last bucket) lists that skip rolled-up days.

    Reading the hours of days a daily rollup already answers was most of a
    fleet query's time (24,000 rows listed to use 1,000).
    """
    if not hours:
        return []
    if not days:
        return [(series_ids, hours[0], hours[-1])]
    hour_ns, day_ns = HOUR_S * NS, DAY_S * NS
    first_day, after_days = days[0], days[-1] + day_ns
    ranges = []
    if hours[0] < first_day:
        ranges.append((series_ids, hours[0], first_day - hour_ns))
    if hours[-1] >= after_days:
        ranges.append((series_ids, after_days, hours[-1]))
    partly = [s for s in series_ids if len(rolled_days[s]) < len(days)]
    if partly:
        ranges.append((partly, max(hours[0], first_day), min(hours[-1], after_days - hour_ns)))
    return [(members, first, last) for members, first, last in ranges if first <= last]


def plan(
    store: Store,
    series_ids: list[int],
    start_ns: int,
    end_ns: int,
    limit: int,
    rollups: bool = True,
    max_width_s: int = DAY_S,
) -> list[ProfileMeta]:
    """Rows covering ``[start_ns, end_ns)`` for the series: rollups (none wider than ``max_width_s``)
    where whole buckets allow, else raw."""
    if not series_ids:
        return []
    covered: dict[int, list[Interval]] = defaultdict(list)
    parts: list[ProfileMeta] = []
    if rollups:
        days = _whole_buckets(start_ns, end_ns, DAY_S) if max_width_s >= DAY_S else []
        rolled_days: dict[int, set[int]] = defaultdict(set)
        if days:
            for meta in store.rollups.list(series_ids, DAY_S, days[0], days[-1]):
                parts.append(meta)
                rolled_days[meta.series_id].add(meta.time_ns)
                covered[meta.series_id].append((meta.time_ns, meta.time_ns + DAY_S * NS))
        hours = _whole_buckets(start_ns, end_ns, HOUR_S) if max_width_s >= HOUR_S else []
        for members, first, last in _hour_ranges(series_ids, hours, days, rolled_days):
            for meta in store.rollups.list(members, HOUR_S, first, last):
                if meta.time_ns - meta.time_ns % (DAY_S * NS) in rolled_days[meta.series_id]:
                    continue
                parts.append(meta)
                covered[meta.series_id].append((meta.time_ns, meta.time_ns + HOUR_S * NS))
    # Raw profiles for what no rollup covers, one query per distinct gap (usually the two edges).
    gaps: dict[Interval, list[int]] = defaultdict(list)
    for series_id in series_ids:
        for gap in subtract((start_ns, end_ns), covered[series_id]):
            gaps[gap].append(series_id)
    if len(gaps) > 64:  # rollups are missing all over: one scan is cheaper than many
        gaps = {(start_ns, end_ns): [s for s in series_ids if not covered[s]]}
        for series_id in series_ids:
            if covered[series_id]:
                gaps[(start_ns, end_ns)].append(series_id)
        parts = []
    for (gap_start, gap_end), members in gaps.items():
        raw = store.profiles.list(members, gap_start, gap_end, limit - len(parts))
        parts.extend(raw)
        if len(parts) > limit:
            raise TooExpensive(
                f"the query reads more than {limit} stored profiles; narrow the time range or the selector "
                "(the limit is the max_query_profiles setting; rollups cover whole hours once they are built)"
            )
    parts.sort(key=lambda m: (m.time_ns, m.width_s, m.id))
    return parts
