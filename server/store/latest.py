"""The newest profile of every series, with its per-sample-type totals: what ``/metrics`` exports.

One grouped query over ``profiles`` (served by ``ix_profiles_series_time``),
joined to the shapes that name the totals, so a scrape of ``/metrics`` costs
one round trip whatever the fleet size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from server.store.models import ProfileRow, ProfileShape, Series

_CHUNK = 500  # series per statement: well under every driver's parameter limit


@dataclass(frozen=True, slots=True)
class LatestTotals:
    series_id: int
    time_ns: int
    sample_types: tuple[str, ...]  # "type/unit"
    totals: list[int]


def latest_totals(engine: Engine) -> list[LatestTotals]:
    newest = (
        select(ProfileRow.series_id, func.max(ProfileRow.time_ns).label("time_ns"))
        .group_by(ProfileRow.series_id)
        .subquery()
    )
    query = (
        select(ProfileRow.series_id, ProfileRow.time_ns, ProfileShape.sample_types, ProfileRow.totals)
        .join(newest, (ProfileRow.series_id == newest.c.series_id) & (ProfileRow.time_ns == newest.c.time_ns))
        .join(ProfileShape, ProfileShape.id == ProfileRow.shape_id)
        .order_by(ProfileRow.series_id, ProfileRow.id.desc())
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    result: dict[int, LatestTotals] = {}
    for series_id, time_ns, sample_types, totals in rows:
        # Two profiles of one series at the same nanosecond: the one stored last wins.
        result.setdefault(
            series_id, LatestTotals(series_id, time_ns, tuple(sample_types.split(",")), [int(t) for t in totals])
        )
    return list(result.values())


def newest_of(engine: Engine, series_ids: Sequence[int]) -> list[LatestTotals]:
    """The newest profile of each of ``series_ids``: one index lookup per series.

    ``latest_totals`` groups the whole ``profiles`` table, which is right for
    every series at once; a page that asks about a thousand series should not
    read their whole history, so here each series' newest time is a
    ``max(time_ns)`` that ``ix_profiles_series_time`` answers from its last entry.
    """
    result: dict[int, LatestTotals] = {}
    ids = sorted(set(series_ids))
    with engine.connect() as conn:
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            newest_time = (
                select(func.max(ProfileRow.time_ns))
                .where(ProfileRow.series_id == Series.id)
                .correlate(Series)
                .scalar_subquery()
            )
            newest = select(Series.id.label("series_id"), newest_time.label("time_ns")).where(Series.id.in_(chunk))
            newest_sub = newest.subquery()
            query = (
                select(ProfileRow.series_id, ProfileRow.time_ns, ProfileShape.sample_types, ProfileRow.totals)
                .join(
                    newest_sub,
                    (ProfileRow.series_id == newest_sub.c.series_id) & (ProfileRow.time_ns == newest_sub.c.time_ns),
                )
                .join(ProfileShape, ProfileShape.id == ProfileRow.shape_id)
                .order_by(ProfileRow.series_id, ProfileRow.id.desc())
            )
            for series_id, time_ns, sample_types, totals in conn.execute(query):
                names = tuple(sample_types.split(","))
                result.setdefault(series_id, LatestTotals(series_id, time_ns, names, [int(t) for t in totals]))
    return list(result.values())
