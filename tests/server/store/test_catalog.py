"""What the store holds over a range (server/query/catalog.py) and step sums on any grid (timeseries.step_sums).

Both are read paths the Pyroscope translation layer needs and the rest of the
API did not: series with data in a range (also once retention removed their
raw profiles and only rollups remain), the store's first and last profile,
and per-step sums whose grid starts anywhere, from raw rows or rollups.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import delete, select

from server.ingest.profile import ingest
from server.query import catalog
from server.query.request import ProfileQuery
from server.query.selector import parse_selector
from server.query.timeseries import step_sums
from server.settings import Settings
from server.store.models import ProfileBlob, ProfileRow
from server.store.repository import Store
from server.store.rollups import HOUR_S, NS
from server.upkeep.jobs import build_rollups
from tests.support.oracle import pprof_top
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

HOUR0 = 1_780_002_000 - 1_780_002_000 % HOUR_S  # a whole UTC hour in May 2026, in seconds


def _store(store: Store, settings: Settings) -> None:
    """api: cpu at HOUR0+60 and cpu2 at HOUR0+1860; web: cpu_slow at HOUR0+3660 (the next hour)."""
    for name, service, offset in (("cpu", "api", 60), ("cpu2", "api", 1860), ("cpu_slow", "web", 3660)):
        ingest(
            store, settings, (DATA / f"{name}.pb.gz").read_bytes(), {"service": service}, "cpu", (HOUR0 + offset) * NS
        )


def test_active_series_follow_the_range(store: Store, settings: Settings) -> None:
    assert catalog.active_series(store, 0, 2**62) == []
    assert catalog.data_bounds(store) is None
    _store(store, settings)
    services = {
        (start, end): sorted(a.series.labels["service"] for a in catalog.active_series(store, start * NS, end * NS))
        for start, end in (
            (HOUR0, HOUR0 + 7200),
            (HOUR0, HOUR0 + 60),
            (HOUR0 + 61, HOUR0 + 1859),
            (HOUR0 + 3600, HOUR0 + 7200),
        )
    }
    assert services == {
        (HOUR0, HOUR0 + 7200): ["api", "web"],
        (HOUR0, HOUR0 + 60): ["api"],  # the end is inclusive
        (HOUR0 + 61, HOUR0 + 1859): [],
        (HOUR0 + 3600, HOUR0 + 7200): ["web"],
    }
    (api, _web) = catalog.active_series(store, HOUR0 * NS, (HOUR0 + 7200) * NS)
    assert api.shape.sample_types == ("samples/count", "cpu/nanoseconds") and api.shape.period_type == "cpu/nanoseconds"
    bounds = catalog.data_bounds(store)
    assert bounds is not None and (bounds.oldest_ns, bounds.newest_ns) == ((HOUR0 + 60) * NS, (HOUR0 + 3660) * NS)


def test_rollups_keep_a_series_active_after_its_raw_profiles_are_gone(store: Store, settings: Settings) -> None:
    _store(store, settings)
    assert build_rollups(store, now_ns=(HOUR0 + 3 * HOUR_S) * NS)["hourly"] == 2
    with store.engine.begin() as conn:  # what retention does to raw profiles older than its horizon
        old = select(ProfileRow.id).where(ProfileRow.time_ns < (HOUR0 + 3600) * NS)
        conn.execute(delete(ProfileBlob).where(ProfileBlob.profile_id.in_(old)))
        conn.execute(delete(ProfileRow).where(ProfileRow.time_ns < (HOUR0 + 3600) * NS))
    found = catalog.active_series(store, (HOUR0 + 1200) * NS, (HOUR0 + 1300) * NS)
    assert [a.series.labels["service"] for a in found] == ["api"]  # its hour's rollup overlaps the range
    bounds = catalog.data_bounds(store)
    assert bounds is not None and (bounds.oldest_ns, bounds.newest_ns) == (HOUR0 * NS, (HOUR0 + 3660) * NS)


def test_step_sums_on_any_grid_equal_raw_and_rollups(store: Store, settings: Settings) -> None:
    _store(store, settings)
    build_rollups(store, now_ns=(HOUR0 + 3 * HOUR_S) * NS)
    totals = [pprof_top([DATA / f"{n}.pb.gz"], "cpu", "nanoseconds").total for n in ("cpu", "cpu2", "cpu_slow")]
    query = ProfileQuery("cpu", parse_selector("{}"), HOUR0 * NS, (HOUR0 + 2 * HOUR_S) * NS - 1, "cpu", "sum")
    # Whole hours from a whole hour: rollups may answer; they must give what raw rows give.
    hourly = step_sums(store, settings, query, HOUR0 * NS, HOUR_S * NS, [])
    raw = step_sums(store, settings, replace(query, rollups=False), HOUR0 * NS, HOUR_S * NS, [])
    assert hourly == raw
    ((everything), sample, unit) = hourly
    assert (sample, unit) == ("cpu", "nanoseconds")
    (group,) = everything
    assert (group.labels, group.steps, group.sums, group.profiles) == (
        {},
        [0, 1],
        [totals[0] + totals[1], totals[2]],
        [2, 1],
    )
    # A grid that starts mid-hour, by service: steps of 30 min from HOUR0 + 17 min, where the range starts.
    origin = (HOUR0 + 17 * 60) * NS
    query = replace(query, start_ns=origin)
    by_service, _, _ = step_sums(store, settings, query, origin, 1800 * NS, ["service"])
    assert [(g.labels, g.steps, g.sums) for g in by_service] == [
        ({"service": "api"}, [0], [totals[1]]),  # HOUR0+60 lies before the range
        ({"service": "web"}, [1], [totals[2]]),
    ]
    assert step_sums(store, settings, replace(query, rollups=False), origin, 1800 * NS, ["service"])[0] == by_service
    # Grouping by a label a series lacks leaves it out of the group's labels.
    missing, _, _ = step_sums(store, settings, query, origin, 1800 * NS, ["nosuch"])
    assert [g.labels for g in missing] == [{}]
