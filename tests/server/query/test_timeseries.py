"""Trend lines from stored totals: per series, grouped, aggregated, from raw rows or rollups."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.ingest.profile import ingest
from server.pprof import decode
from server.query.request import ProfileQuery
from server.query.timeseries import timeseries
from server.settings import Settings
from server.store.repository import Store
from server.store.rollups import NS
from server.upkeep.jobs import build_rollups
from tests.support.helpers import push
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

T0 = 1_790_000_000 - 1_790_000_000 % 86_400
GOROUTINES = decode((DATA / "goroutine.pb.gz").read_bytes()).totals()[0]
CPU = decode((DATA / "cpu.pb.gz").read_bytes()).totals()


def _series(client: TestClient, **params: str) -> dict[str, Any]:
    response = client.get("/api/v1/timeseries", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_per_instance_and_fleet_total(client: TestClient) -> None:
    for minute in range(6):
        for instance in ("a", "b", "c"):
            push(client, DATA / "goroutine.pb.gz", time=str(T0 + minute * 60 + 5), label=f"instance={instance}")
    window = {"type": "goroutine", "from": str(T0), "to": str(T0 + 359)}
    per_instance = _series(client, step="2m", group_by="instance", **window)
    assert [s["labels"] for s in per_instance["series"]] == [{"instance": i} for i in "abc"]
    assert per_instance["series"][0]["points"] == [[T0, GOROUTINES], [T0 + 120, GOROUTINES], [T0 + 240, GOROUTINES]]
    fleet = _series(client, step="2m", group_by="service", **window)
    assert fleet["series"] == [
        {"labels": {"service": "demo"}, "points": [[T0 + 120 * i, 3 * GOROUTINES] for i in range(3)]}
    ]
    summed = _series(client, step="2m", group_by="service", aggregation="sum", **window)
    assert summed["series"][0]["points"][0][1] == 6 * GOROUTINES  # two profiles per instance per step
    ungrouped = _series(client, step="6m", **window)
    assert len(ungrouped["series"]) == 3 and ungrouped["series"][0]["labels"]["service"] == "demo"


def test_sample_types_and_max(client: TestClient) -> None:
    push(client, DATA / "cpu.pb.gz", time=str(T0 + 10))
    push(client, DATA / "cpu2.pb.gz", time=str(T0 + 20))
    cpu2 = decode((DATA / "cpu2.pb.gz").read_bytes()).totals()
    window = {"type": "cpu", "from": str(T0), "to": str(T0 + 59), "step": "1m", "group_by": "service"}
    assert _series(client, sample="samples", aggregation="max", **window)["series"][0]["points"] == [
        [T0, max(CPU[0], cpu2[0])]
    ]
    body = _series(client, sample="cpu", aggregation="sum", **window)
    assert body["unit"] == "nanoseconds" and body["series"][0]["points"] == [[T0, CPU[1] + cpu2[1]]]


def test_totals_past_32_bits(client: TestClient, store: Store) -> None:
    """A production CPU profile's nanoseconds overflow a 32-bit integer; trends must not (PostgreSQL included)."""
    big = decode((DATA / "big_cpu.pb.gz").read_bytes()).totals()[1]
    assert big > 2**31
    for hour in range(2):
        push(client, DATA / "big_cpu.pb.gz", time=str(T0 + hour * 3600 + 10))
    build_rollups(store, now_ns=(T0 + 2 * 86_400) * NS)
    window = {"type": "cpu", "sample": "cpu", "from": str(T0), "to": str(T0 + 7199), "group_by": "service"}
    assert _series(client, step="1h", aggregation="sum", **window)["series"][0]["points"] == [
        [T0, big],
        [T0 + 3600, big],
    ]
    assert _series(client, step="1m", aggregation="max", **window)["series"][0]["points"] == [
        [T0, big],
        [T0 + 3600, big],
    ]


def test_hourly_steps_read_rollups_with_the_same_answer(client: TestClient, store: Store) -> None:
    for hour in range(5):
        for quarter in range(4):
            push(client, DATA / "goroutine.pb.gz", time=str(T0 + hour * 3600 + quarter * 900), label="instance=a")
    params = {"type": "goroutine", "from": str(T0), "to": str(T0 + 5 * 3600 - 1), "step": "1h", "group_by": "service"}
    raw = [_series(client, aggregation=a, **params) for a in ("avg", "sum", "max")]
    build_rollups(store, now_ns=(T0 + 2 * 86_400) * NS)
    assert len(store.rollups.list([s.id for s in store.series.all()], 3600, T0 * NS, (T0 + 86_400) * NS)) == 5
    rolled = [_series(client, aggregation=a, **params) for a in ("avg", "sum", "max")]
    assert rolled == raw
    assert raw[1]["series"][0]["points"][0] == [T0, 4 * GOROUTINES]


def test_rollup_holes_edges_and_days_give_the_raw_answer(client: TestClient, store: Store) -> None:
    """Rollups missing for some hours of some series (late data, a new instance) and an open edge hour.

    The planner reads rollups where they exist and raw rows for every other
    range of each series; the answer equals the raw-only one for each
    aggregation, with hour and day steps.
    """
    for hour in range(30):
        for instance in ("a", "b", "c"):
            if instance == "c" and hour < 20:
                continue  # an instance that started later
            for quarter in range(2):
                at = T0 + hour * 3600 + quarter * 1800 + ord(instance)
                push(client, DATA / "goroutine.pb.gz", time=str(at), label=f"instance={instance}")
    push(client, DATA / "heap.pb.gz", time=str(T0 + 7200), label="instance=a")  # another kind: not matched
    build_rollups(store, now_ns=(T0 + 29 * 3600) * NS)  # hour 29 stays open: raw only
    push(client, DATA / "goroutine.pb.gz", time=str(T0 + 5 * 3600 + 60), label="instance=b")  # late: hour 5 of b
    series = [s.id for s in store.series.all()]
    hourly = len(store.rollups.list(series, 3600, T0 * NS, (T0 + 30 * 3600) * NS))
    assert 0 < hourly < 3 * 30  # holes: b's hour 5 invalidated, c's first 20 hours, the open hour
    settings = client.app.state.settings  # type: ignore[attr-defined]
    windows = [("1h", T0, T0 + 30 * 3600 - 1), ("1d", T0, T0 + 2 * 86_400 - 1)]
    windows += [("1h", T0 + 1234, T0 + 29 * 3600 + 77), ("2h", T0 + 3599, T0 + 20 * 3600), ("1d", T0 + 7, T0 + 86_500)]
    for step, since, to in windows:  # the last three start and end mid-bucket: raw edges on both sides
        query = ProfileQuery.parse("goroutine", None, str(since), str(to))
        for group_by in ("instance", "service"):
            for aggregation in ("avg", "sum", "max"):
                rolled = timeseries(store, settings, query, step, [group_by], aggregation)
                raw = timeseries(store, settings, replace(query, rollups=False), step, [group_by], aggregation)
                assert rolled == raw and rolled.series, (step, since, group_by, aggregation)
                first = rolled.series[0].points[0][0]
                assert first % rolled.step_s == 0 and first <= since  # steps sit on multiples of the step
    by_instance = _series(
        client,
        type="goroutine",
        group_by="instance",
        aggregation="sum",
        step="1h",
        **{"from": str(T0), "to": str(T0 + 30 * 3600 - 1)},
    )
    lines = {s["labels"]["instance"]: dict(s["points"]) for s in by_instance["series"]}
    assert lines["b"][T0 + 5 * 3600] == 3 * GOROUTINES and lines["a"][T0 + 5 * 3600] == 2 * GOROUTINES
    assert min(lines["c"]) == T0 + 20 * 3600


def test_bad_trend_parameters(client: TestClient) -> None:
    bad = client.get("/api/v1/timeseries", params={"type": "goroutine", "from": "now-7d", "step": "1s"})
    assert bad.status_code == 400 and "maximum is 11000" in bad.json()["error"]
    bad = client.get("/api/v1/timeseries", params={"type": "goroutine", "aggregation": "median"})
    assert bad.status_code == 400 and "'median' is not one of avg, sum, max" in bad.json()["error"]
    bad = client.get("/api/v1/timeseries", params={"type": "goroutine", "step": "fast"})
    assert bad.status_code == 400 and "step" in bad.json()["error"]


def test_too_many_raw_rows_is_refused(client: TestClient) -> None:
    client.app.state.settings.max_timeseries_raw_profiles = 3  # type: ignore[attr-defined]
    for minute in range(5):
        push(client, DATA / "goroutine.pb.gz", time=str(T0 + minute * 60))
    response = client.get("/api/v1/timeseries", params={"type": "goroutine", "from": str(T0), "to": str(T0 + 600)})
    assert response.status_code == 422
    assert "more than 3 raw profiles" in response.json()["error"]


def test_group_by_and_filter_on_sample_labels(client: TestClient, store: Store) -> None:
    from tests.support.oracle import pprof_top

    for minute in range(4):
        push(client, DATA / "cpu.pb.gz", time=str(T0 + minute * 60 + 1))
    window = {"type": "cpu", "sample": "cpu", "from": str(T0), "to": str(T0 + 239), "step": "2m"}
    by_handler = _series(client, group_by="handler", aggregation="sum", **window)
    checkout = pprof_top([DATA / "cpu.pb.gz"], "cpu", "nanoseconds", extra=("-tagfocus=handler=^/checkout$",)).shown
    lines = {s["labels"]["handler"]: s["points"] for s in by_handler["series"]}
    assert set(lines) == {"", "/checkout", "/search"}  # "" is the samples without a handler label
    assert lines["/checkout"] == [[T0, 2 * checkout], [T0 + 120, 2 * checkout]]
    assert sum(points[0][1] for points in lines.values()) == 2 * CPU[1]
    only = _series(client, query='{handler="/checkout"}', aggregation="avg", **window)
    assert [p[1] for p in only["series"][0]["points"]] == [checkout, checkout]
    peak = _series(client, query='{handler="/checkout"}', aggregation="max", group_by="service", **window)
    assert peak["series"][0]["points"][0][1] == checkout


def test_the_default_step_is_never_finer_than_the_scrape_interval(
    client: TestClient, store: Store, settings: Settings
) -> None:
    """15 s scrapes over 15 minutes: about 240 points would be a 4 s step, most steps empty, the line dashed."""
    data = (DATA / "goroutine.pb.gz").read_bytes()
    start = T0 + 3 * 3600
    for k in range(64):  # 16 minutes, with the few milliseconds of jitter real scrapes have
        for instance, offset_ms in (("a", 3_217), ("b", 11_902)):
            at_ns = (start + 15 * k) * NS + offset_ms * 1_000_000 + (k % 3) * 4_000_000
            ingest(store, settings, data, {"service": "demo", "instance": instance}, "goroutine", at_ns)
    window = {"type": "goroutine", "from": str(start + 30), "to": str(start + 930), "group_by": "instance"}
    trend = _series(client, **window)
    assert trend["step"] == 20  # the first round step above 15 s and its jitter
    for line in trend["series"]:
        times = [t for t, _ in line["points"]]
        assert times == list(range(int(times[0]), int(times[-1]) + 1, 20)), "a step without a point"
        assert all(value == GOROUTINES for _, value in line["points"])
    # Given explicitly, a step is the caller's choice; on a long range the 240 points are coarser anyway.
    assert _series(client, step="5s", **window)["step"] == 5
    hours = {**window, "from": str(start - 6 * 3600), "to": str(start + 930)}
    assert _series(client, **hours)["step"] == 94  # (6 h 15.5 min) / 240, rounded up to a second
    # Function history learns the same interval.
    span = {"type": "goroutine", "from": window["from"], "to": window["to"]}
    history = client.get("/api/v1/functions/runtime.gopark/history", params=span)
    assert history.status_code == 200, history.text
    assert history.json()["step"] == 20
