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

from sqlalchemy import Engine, func, select

from server.store.models import ProfileRow, Rollup, Series
from server.store.rollups import NS

INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """The oldest and newest profile time (ns) of the whole store; ``None`` when nothing was ever stored."""

    oldest_ns: int
    newest_ns: int


def series_shapes(engine: Engine, start_ns: int, end_ns: int) -> dict[int, int]:
    """Series with a profile, or a rollup overlapping ``[start_ns, end_ns)``, with the shape of its newest one there.

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
    rolled = (
        select(Rollup.shape_id)
        .where(
            Rollup.series_id == Series.id,
            Rollup.bucket_ns < end_ns,
            Rollup.bucket_ns + Rollup.width_s * NS > start_ns,
        )
        .order_by(Rollup.bucket_ns.desc())
        .limit(1)
        .correlate(Series)
        .scalar_subquery()
    )
    with engine.connect() as conn:
        rows = conn.execute(select(Series.id, func.coalesce(raw, rolled)).select_from(Series)).all()
    return {int(series_id): int(shape_id) for series_id, shape_id in rows if shape_id is not None}


def time_bounds(engine: Engine) -> TimeBounds | None:
    """The oldest time held (a raw profile, or the start of a rollup whose profiles are gone) and the newest."""

    def probe(column: Any, series_of: Any, newest: bool) -> Any:
        order = column.desc() if newest else column.asc()
        return select(column).where(series_of == Series.id).order_by(order).limit(1).correlate(Series).scalar_subquery()

    per_series = (
        select(
            probe(ProfileRow.time_ns, ProfileRow.series_id, newest=False).label("raw_oldest"),
            probe(ProfileRow.time_ns, ProfileRow.series_id, newest=True).label("raw_newest"),
            probe(Rollup.bucket_ns, Rollup.series_id, newest=False).label("rolled_oldest"),
            probe(Rollup.bucket_ns, Rollup.series_id, newest=True).label("rolled_newest"),
        )
        .select_from(Series)
        .subquery()
    )
    with engine.connect() as conn:
        row = conn.execute(
            select(
                func.min(per_series.c.raw_oldest),
                func.max(per_series.c.raw_newest),
                func.min(per_series.c.rolled_oldest),
                func.max(per_series.c.rolled_newest),
            )
        ).one()
    raw_oldest, raw_newest, rolled_oldest, rolled_newest = row
    oldest = [int(v) for v in (raw_oldest, rolled_oldest) if v is not None]
    newest = [int(v) for v in (raw_newest, rolled_newest) if v is not None]
    if not oldest:
        return None
    return TimeBounds(min(oldest), max(newest))
