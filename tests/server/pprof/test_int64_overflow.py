"""64-bit ranges: times past 2262 and sums past 2^63 are refused (or, in rollups, saturated), never wrapped.

The probe's repros: times in the years 2262 to 9999 were accepted and gave a
500 on ingest and queries (BIGINT nanoseconds end in April 2262); two samples
of 2^63-1 were stored with a total of -2. Every case runs on SQLite and
PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.pprof import profile_pb2
from server.pprof.checked import SATURATED
from server.query import service
from server.query.request import ProfileQuery
from server.query.selector import parse_selector
from server.settings import Settings
from server.store.repository import Store
from server.store.rollups import HOUR_S, NS
from server.upkeep.jobs import build_rollups
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

INT64_MAX = 2**63 - 1
HOUR0 = 1_790_000_000 - 1_790_000_000 % HOUR_S  # a whole hour in 2026, in seconds
CPU = (DATA / "cpu.pb.gz").read_bytes()


def profile(*values: int, time_nanos: int = 0, function: str = "main.f") -> bytes:
    message = profile_pb2.Profile(string_table=["", "samples", "count", function], time_nanos=time_nanos)
    message.sample_type.add(type=1, unit=2)
    message.function.add(id=1, name=3)
    message.location.add(id=1).line.add(function_id=1)
    for value in values:
        message.sample.add(location_id=[1], value=[value])
    return message.SerializeToString()


def push(client: TestClient, body: bytes, **params: str) -> Any:
    return client.post("/api/v1/ingest", params={"service": "big", "type": "cpu", **params}, content=body)


# --------------------------------------------------------------------------- times


@pytest.mark.parametrize("when", ["2262-05-01T00:00:00Z", "9999-12-31T00:00:00Z", "1600-01-01T00:00:00Z", "1e10"])
def test_times_past_64_bit_nanoseconds_are_refused_everywhere(client: TestClient, store: Store, when: str) -> None:
    pushed = push(client, CPU, time=when)
    assert pushed.status_code == 400
    assert pushed.json()["error"] == f"time: {when!r} is out of range (years 1678 to 2261)"
    dump = client.post(
        "/api/v1/goroutines/ingest",
        params={"service": "big", "time": when},
        content=(DATA / "goroutine_dump_long.txt").read_bytes(),
    )
    assert dump.status_code == 400 and "out of range (years 1678 to 2261)" in dump.json()["error"]
    for path in ("/api/v1/top", "/api/v1/flamegraph", "/api/v1/timeseries", "/api/v1/pprof"):
        queried = client.get(path, params={"type": "cpu", "from": "0", "to": when})
        assert queried.status_code == 400, (path, queried.text)
        assert "out of range (years 1678 to 2261)" in queried.json()["error"]
    assert store.series.all() == []


def test_a_profiles_own_time_past_2262_is_refused(client: TestClient, store: Store) -> None:
    refused = push(client, profile(5, time_nanos=INT64_MAX - 10**9))
    assert refused.status_code == 400
    assert refused.json()["error"] == (
        f"time_nanos: {INT64_MAX - 10**9} ns since 1970 is out of range (years 1678 to 2261); "
        "give the profile a time with time="
    )
    # Its own time is not used when the push gives one.
    assert push(client, profile(5, time_nanos=INT64_MAX - 10**9), time=str(HOUR0)).status_code == 201


def test_durations_past_64_bit_nanoseconds_are_refused(client: TestClient) -> None:
    queried = client.get("/api/v1/timeseries", params={"type": "cpu", "from": "0", "to": "now", "step": "300y"})
    assert queried.status_code == 400
    assert queried.json()["error"] == "step: '300y' is longer than 292 years (64-bit nanoseconds)"


# --------------------------------------------------------------------------- sums


def test_a_profile_whose_values_add_up_past_the_range_is_refused(client: TestClient, store: Store) -> None:
    refused = push(client, profile(INT64_MAX, INT64_MAX), time=str(HOUR0))
    assert refused.status_code == 400
    assert refused.json()["error"] == (
        f"malformed profile: the positive values of sample type samples/count add up to {2 * INT64_MAX}, "
        f"past the 64-bit range (at most {INT64_MAX - 1} either way)"
    )
    negative = push(client, profile(-INT64_MAX, -5), time=str(HOUR0))
    assert negative.status_code == 400 and "the negative values" in negative.json()["error"]
    assert store.series.all() == []
    # One sample just inside the range is a profile like any other, and its total is exact.
    stored = push(client, profile(INT64_MAX - 1), time=str(HOUR0))
    assert stored.status_code == 201 and stored.json()["totals"] == {"samples": INT64_MAX - 1}


BIG = 5 * 10**18  # two of them pass 2^63-1; one does not


def query(start_s: int, end_s: int, rollups: bool) -> ProfileQuery:
    return ProfileQuery("cpu", parse_selector("{}"), start_s * NS, end_s * NS, "samples", None, rollups)


@pytest.fixture
def two_big(client: TestClient, store: Store) -> Store:
    """Two profiles of 5e18 in one hour (each fits; their sum does not), and a small one the hour after."""
    assert push(client, profile(BIG, function="main.big"), time=str(HOUR0 + 60)).status_code == 201
    assert push(client, profile(BIG, function="main.big"), time=str(HOUR0 + 120)).status_code == 201
    assert push(client, profile(7, function="main.small"), time=str(HOUR0 + HOUR_S + 60)).status_code == 201
    return store


@pytest.mark.parametrize("rollups", [False, True], ids=["raw", "rollups"])
def test_merges_past_the_range_are_refused_with_or_without_rollups(
    two_big: Store, settings: Settings, rollups: bool
) -> None:
    if rollups:
        assert build_rollups(two_big, now_ns=(HOUR0 + 3 * HOUR_S) * NS)["hourly"] == 2
    whole = query(HOUR0, HOUR0 + 2 * HOUR_S, rollups)
    for answer in (
        lambda: service.top(two_big, settings, whole),
        lambda: service.flame(two_big, settings, whole, 100),
        lambda: service.pprof_export(two_big, settings, whole),
    ):
        with pytest.raises(Exception) as caught:
            answer()
        assert type(caught.value).__name__ == "ValueOverflow"
        assert str(caught.value) == (
            f"the samples values selected add up past the 64-bit range (more than {INT64_MAX - 1}); "
            "narrow the time range or the selector"
        )
    # The hour after, alone, and one of the two, alone, are answered exactly.
    after = service.top(two_big, settings, query(HOUR0 + HOUR_S, HOUR0 + 2 * HOUR_S, rollups))
    assert after.total == 7
    one = service.top(two_big, settings, query(HOUR0, HOUR0 + 90, False))
    assert one.total == BIG and one.rows[0].flat == BIG


def test_a_rollup_past_the_range_is_stored_saturated(two_big: Store) -> None:
    assert build_rollups(two_big, now_ns=(HOUR0 + 3 * HOUR_S) * NS)["hourly"] == 2
    rollups = two_big.rollups.list([s.id for s in two_big.series.all()], HOUR_S, HOUR0 * NS, HOUR0 * NS)
    (first,) = rollups
    assert first.totals == [SATURATED] and first.profiles == 2


@pytest.mark.parametrize("step", ["5m", "1h"])
def test_trends_past_the_range_are_refused(two_big: Store, client: TestClient, step: str) -> None:
    build_rollups(two_big, now_ns=(HOUR0 + 3 * HOUR_S) * NS)
    params = {"type": "cpu", "sample": "samples", "from": str(HOUR0), "to": str(HOUR0 + 2 * HOUR_S - 1)}
    summed = client.get("/api/v1/timeseries", params={**params, "step": step, "aggregation": "sum"})
    assert summed.status_code == 422, summed.text
    assert "add up past the 64-bit range" in summed.json()["error"]
    history = client.get("/api/v1/functions/main.big/history", params={**params, "step": step})
    assert history.status_code == 422, history.text
    # A step that keeps the two apart adds nothing up: each point is exact.
    apart = client.get("/api/v1/timeseries", params={**params, "step": "30s", "aggregation": "sum"})
    assert apart.status_code == 200, apart.text
    values = [value for line in apart.json()["series"] for _, value in line["points"]]
    assert BIG in values


def test_sums_inside_the_range_stay_exact(client: TestClient, store: Store, settings: Settings) -> None:
    four = 4 * 10**18
    for offset in (60, 120):
        assert push(client, profile(four), time=str(HOUR0 + offset)).status_code == 201
    assert service.top(store, settings, query(HOUR0, HOUR0 + HOUR_S, False)).total == 2 * four
    build_rollups(store, now_ns=(HOUR0 + 2 * HOUR_S) * NS)
    assert service.top(store, settings, query(HOUR0, HOUR0 + HOUR_S, True)).total == 2 * four
