"""Trend cells aggregated by the database: per series and step, the count, sum and max of one sample type.

A fleet trend touches hundreds of thousands of profile or rollup rows. Turning
each into a Python object (and JSON-decoding its totals) cost 5-20 µs a row;
the database extracts the one total a trend needs and, for raw rows, groups
them per series and step itself, so Python only sees integers, one row per
cell (or per rollup bucket, which the planner needs to know what is covered).

The chosen sample type sits at a different position in each profile shape, so
the extraction is a ``CASE shape_id WHEN ... THEN totals[i]``; shapes without
it give NULL, and the caller checks that none of those turned up.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import BigInteger, ColumnElement, Engine, case, cast, func, literal, select

from server.store.database import chunks
from server.store.models import ProfileRow, Rollup
from server.store.profiles import TooManyRows

IntArray = NDArray[np.int64]


class SumOverflow(Exception):
    """A sum of totals the database made is past the 64-bit range (the query is refused, not wrapped)."""


#: Series per statement: keeps the expanding IN list well under every database's parameter limit.
SERIES_PER_QUERY = 1000


def _pick(column: Any, index_by_shape: Mapping[int, int], shape: Any) -> ColumnElement[Any]:
    """``totals[i]`` for the shape's index of the chosen sample type, NULL for shapes without it."""
    if not index_by_shape:
        return literal(None)
    # BIGINT, not as_integer(): PostgreSQL's INTEGER overflows on a CPU profile's nanoseconds.
    return case(
        {sid: cast(column[index].as_string(), BigInteger) for sid, index in index_by_shape.items()}, value=shape
    )


def _fetch(engine: Engine, statements: Sequence[Any], width: int) -> IntArray:
    """Run the statements on the DBAPI cursor and return one integer array.

    Every value is an integer (the queries coalesce NULLs). SQLAlchemy's Row
    objects cost ~10 µs each here, more than the database's own work, so the
    compiled statement goes to the driver's cursor and its tuples straight
    into numpy.
    """
    flat: list[IntArray] = []
    with engine.connect() as conn:
        cursor = conn.connection.cursor()
        try:
            for statement in statements:
                # Only integers go into these statements, so rendering them inline is safe.
                compiled = statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
                cursor.execute(str(compiled))
                rows = cursor.fetchall()
                flat.append(np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=len(rows) * width))
        except sqlite3.OperationalError as exc:
            if "integer overflow" not in str(exc):
                raise
            raise SumOverflow() from None  # SQLite's SUM() past 64 bits
        except OverflowError:
            raise SumOverflow() from None  # PostgreSQL sums BIGINT as NUMERIC: a sum past 64 bits arrives whole
        finally:
            cursor.close()
    return np.concatenate(flat).reshape(-1, width) if flat else np.zeros((0, width), dtype=np.int64)


def raw_cells(
    engine: Engine,
    series_ids: Sequence[int],
    index_by_shape: Mapping[int, int],
    start_ns: int,
    end_ns: int,
    origin_ns: int,
    step_ns: int,
) -> IntArray:
    """Rows of (series, shape, step, count, sum, max, missing) for raw profiles in ``[start, end)``.

    ``step`` is ``(time - origin) // step_ns``; ``missing`` counts profiles
    whose shape lacks the sample type (so the caller can refuse the query).
    """
    value = _pick(ProfileRow.totals, index_by_shape, ProfileRow.shape_id)
    bucket = (ProfileRow.time_ns - origin_ns) // step_ns
    statements = [
        select(
            ProfileRow.series_id,
            ProfileRow.shape_id,
            bucket,
            func.count(),
            func.coalesce(func.sum(value), 0),
            func.coalesce(func.max(value), 0),
            func.count() - func.count(value),
        )
        .where(ProfileRow.series_id.in_(part), ProfileRow.time_ns >= start_ns, ProfileRow.time_ns < end_ns)
        .group_by(ProfileRow.series_id, ProfileRow.shape_id, bucket)
        for part in chunks(list(series_ids), SERIES_PER_QUERY)
    ]
    return _fetch(engine, statements, 7)


def count_raw(engine: Engine, series_ids: Sequence[int], start_ns: int, end_ns: int, limit: int) -> int:
    """Raw profiles in ``[start, end)`` (index only); raises :class:`TooManyRows` past ``limit``."""
    counted = 0
    with engine.connect() as conn:
        for part in chunks(list(series_ids), SERIES_PER_QUERY):
            counted += int(
                conn.execute(
                    select(func.count())
                    .select_from(ProfileRow)
                    .where(ProfileRow.series_id.in_(part), ProfileRow.time_ns >= start_ns, ProfileRow.time_ns < end_ns)
                ).scalar_one()
            )
            if counted > limit:
                raise TooManyRows(limit)
    return counted


def rollup_cells(
    engine: Engine,
    width_s: int,
    series_ids: Sequence[int],
    index_by_shape: Mapping[int, int],
    first_bucket_ns: int,
    last_bucket_ns: int,
) -> IntArray:
    """Rows of (series, shape, bucket_ns, profiles, sum, max, missing) for rollups with buckets in the range.

    One row per stored rollup, not grouped: the caller needs each bucket to
    know which hours the rollups cover and which it must read raw.
    """
    total = _pick(Rollup.totals, index_by_shape, Rollup.shape_id)
    peak = func.coalesce(_pick(Rollup.max_totals, index_by_shape, Rollup.shape_id), total)
    statements = [
        select(
            Rollup.series_id,
            Rollup.shape_id,
            Rollup.bucket_ns,
            Rollup.profiles,
            func.coalesce(total, 0),
            func.coalesce(peak, 0),
            case((total.is_(None), Rollup.profiles), else_=0),
        ).where(
            Rollup.width_s == width_s,
            Rollup.series_id.in_(part),
            Rollup.bucket_ns >= first_bucket_ns,
            Rollup.bucket_ns <= last_bucket_ns,
        )
        for part in chunks(list(series_ids), SERIES_PER_QUERY)
    ]
    return _fetch(engine, statements, 7)


def recent_gaps(
    engine: Engine, series_ids: Sequence[int], start_ns: int, end_ns: int, per_series: int = 32
) -> IntArray:
    """Gaps between consecutive raw profiles of each series, from its newest ``per_series`` in ``[start, end)``.

    One indexed statement per series (``ix_profiles_series_time``), newest first: the caller asks for a
    handful of series, so this reads a few hundred index entries whatever the range.
    """
    gaps: list[IntArray] = []
    with engine.connect() as conn:
        for series_id in series_ids:
            times = conn.execute(
                select(ProfileRow.time_ns)
                .where(ProfileRow.series_id == series_id, ProfileRow.time_ns >= start_ns, ProfileRow.time_ns < end_ns)
                .order_by(ProfileRow.time_ns.desc())
                .limit(per_series + 1)
            ).scalars()
            column = np.fromiter(times, dtype=np.int64)
            if column.shape[0] > 1:
                gaps.append(-np.diff(column))
    return np.concatenate(gaps) if gaps else np.zeros(0, dtype=np.int64)
