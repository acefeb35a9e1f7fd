"""Which series hold data in a time range, and when the store's data begins and ends.

Label pickers and type lists ask these often (each keystroke of an
autocomplete, each dashboard load), over ranges as long as a week. Scanning
that week's profile rows would cost millions of rows; instead each question is
one index probe per series on ``(series_id, time_ns)`` (and on the rollups'
``(series_id, width_s, bucket_ns)`` unique index, for ranges whose raw
profiles retention has already removed), so the cost follows the number of
series, not of profiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, exists, func, select
from sqlalchemy.orm import aliased

from server.store.models import ProfileRow, Rollup, Series
from server.store.rollups import DAY_S, HOUR_S, NS

INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """The oldest and newest profile time (ns) of the whole store; ``None`` when nothing was ever stored."""

    oldest_ns: int
    newest_ns: int


def series_shapes(engine: Engine, start_ns: int, end_ns: int) -> dict[int, int]:
    """Series with a profile in ``[start_ns, end_ns)``, with the shape of its newest one there.

    Where retention removed the raw profiles, an hourly rollup overlapping
    the range stands for them, and where it removed those too, a daily one.

    One shape per series is enough to say which sample types it has: a
    series' profiles come from one Go profile kind, whose sample types do not
    change between scrapes.
    """
    start_ns, end_ns = max(start_ns, -INT64_MAX), min(end_ns, INT64_MAX)
    raw = (
        select(ProfileRow.shape_id)
        .where(ProfileRow.series_id == Series.id, ProfileRow.time_ns >= start_ns, ProfileRow.time_ns < end_ns)
        .order_by(ProfileRow.time_ns.desc())
        .limit(1)
        .correlate(Series)
        .scalar_subquery()
    )
    hours = _rollup_probe(HOUR_S, start_ns, end_ns)
    # A day's rollup says only that the day had data: it answers where its hours are gone (past their retention).
    day = aliased(Rollup)
    hour = aliased(Rollup)
    hours_kept = exists().where(
        hour.series_id == day.series_id,
        hour.width_s == HOUR_S,
        hour.bucket_ns >= day.bucket_ns,
        hour.bucket_ns < day.bucket_ns + DAY_S * NS,
    )
    days = _rollup_probe(DAY_S, start_ns, end_ns, day, ~hours_kept)
    with engine.connect() as conn:
        rows = conn.execute(select(Series.id, func.coalesce(raw, hours, days)).select_from(Series)).all()
    return {int(series_id): int(shape_id) for series_id, shape_id in rows if shape_id is not None}


def _rollup_probe(width_s: int, start_ns: int, end_ns: int, table: Any = Rollup, *where: Any) -> Any:
    """The shape of the series' newest rollup of this width overlapping the range (a correlated subquery)."""
    return (
        select(table.shape_id)
        .where(
            table.series_id == Series.id,
            table.width_s == width_s,
            table.bucket_ns < end_ns,
            table.bucket_ns + width_s * NS > start_ns,
            *where,
        )
        .order_by(table.bucket_ns.desc())
        .limit(1)
        .correlate(Series)
        .scalar_subquery()
    )


def time_bounds(engine: Engine) -> TimeBounds | None:
    """The oldest and newest profile time held.

    Retention removes raw profiles first, then hourly rollups, then daily
    ones; where the oldest data is a rollup, its bucket's start is the
    oldest time known (to the hour, or else to the day).
    """

    def probe(column: Any, series_of: Any, newest: bool, *where: Any) -> Any:
        order = column.desc() if newest else column.asc()
        query = select(column).where(series_of == Series.id, *where).order_by(order).limit(1)
        return query.correlate(Series).scalar_subquery()

    hourly, daily = Rollup.width_s == HOUR_S, Rollup.width_s == DAY_S
    per_series = (
        select(
            probe(ProfileRow.time_ns, ProfileRow.series_id, False).label("raw_oldest"),
            probe(ProfileRow.time_ns, ProfileRow.series_id, True).label("raw_newest"),
            probe(Rollup.bucket_ns, Rollup.series_id, False, hourly).label("hour_oldest"),
            probe(Rollup.bucket_ns, Rollup.series_id, True, hourly).label("hour_newest"),
            probe(Rollup.bucket_ns, Rollup.series_id, False, daily).label("day_oldest"),
            probe(Rollup.bucket_ns, Rollup.series_id, True, daily).label("day_newest"),
        )
        .select_from(Series)
        .subquery()
    )
    columns = per_series.c
    with engine.connect() as conn:
        row = conn.execute(
            select(
                func.min(columns.raw_oldest),
                func.max(columns.raw_newest),
                func.min(columns.hour_oldest),
                func.max(columns.hour_newest),
                func.min(columns.day_oldest),
                func.max(columns.day_newest),
            )
        ).one()
    raw_oldest, raw_newest, hour_oldest, hour_newest, day_oldest, day_newest = row
    finer = [int(v) for v in (raw_oldest, hour_oldest) if v is not None]
    oldest = min(finer) if finer else None
    # A day's rollup starts at midnight: it is the oldest time only for a day no finer data is left of.
    if day_oldest is not None and (oldest is None or int(day_oldest) + DAY_S * NS <= oldest):
        oldest = int(day_oldest)
    newest = [int(v) for v in (raw_newest, hour_newest, day_newest) if v is not None]
    if oldest is None:
        return None
    return TimeBounds(oldest, max(newest))
