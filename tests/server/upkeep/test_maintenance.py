"""`stackyard serve`'s app runs the upkeep jobs itself: rollups appear for closed hours without anyone asking."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from server.settings import Settings
from server.store.repository import Store
from server.store.rollups import DAY_S, HOUR_S, NS, bucket_of
from stackyard.runtime import build_server
from tests.conftest import TEST_RETENTION
from tests.support.helpers import push
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)


def test_serve_builds_rollups_in_the_background(database_url: str) -> None:
    settings = Settings(database_url=database_url, retention_raw=TEST_RETENTION, rollup_interval=0.2)
    two_days_ago = time.time_ns() - 2 * DAY_S * NS
    with TestClient(build_server(settings)) as client:
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        push(client, DATA / "goroutine.pb.gz", time=str(two_days_ago // NS))
        store = Store.from_url(database_url)
        try:
            (series,) = store.series.all()
            hour, day = bucket_of(two_days_ago, HOUR_S), bucket_of(two_days_ago, DAY_S)
            while time.monotonic() < deadline:
                if store.rollups.list([series.id], HOUR_S, hour, hour) and store.rollups.list(
                    [series.id], DAY_S, day, day
                ):
                    break
                time.sleep(0.2)
            else:
                raise AssertionError("no hourly and daily rollup within 30 s of the push")
        finally:
            store.close()
