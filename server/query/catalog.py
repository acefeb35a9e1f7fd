"""What the store holds over a time range: the series with data and their sample types; when data begins and ends.

Type pickers and label autocompletion list only what a chosen time range
has, as Pyroscope's do; :mod:`server.store.activity` answers with one index
probe per series, so a week costs what an hour does.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.store.activity import TimeBounds, series_shapes, time_bounds
from server.store.profiles import Shape
from server.store.repository import Store
from server.store.series import SeriesInfo


@dataclass(frozen=True, slots=True)
class ActiveSeries:
    """A series with data in the range, and the shape (sample types, period type) of its newest profile there."""

    series: SeriesInfo
    shape: Shape


def active_series(store: Store, start_ns: int, end_ns: int) -> list[ActiveSeries]:
    """Series with a profile or rollup in ``[start_ns, end_ns]``, in id order."""
    shapes = series_shapes(store.engine, start_ns, end_ns + 1)
    known = {s.id: s for s in store.series.all()}
    return [
        ActiveSeries(known[series_id], store.profiles.shape(shape_id))
        for series_id, shape_id in sorted(shapes.items())
        if series_id in known
    ]


def data_bounds(store: Store) -> TimeBounds | None:
    """The oldest and newest profile time the store holds; ``None`` when it never stored one."""
    return time_bounds(store.engine)
