"""The newest profile of every series, with its per-sample-type totals: what ``/metrics`` exports.

One grouped query over ``profiles`` (served by ``ix_profiles_series_time``),
joined to the shapes that name the totals, so a scrape of ``/metrics`` costs
one round trip whatever the fleet size.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from server.store.models import ProfileRow, ProfileShape


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
