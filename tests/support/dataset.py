"""A small store with rows in every table that grows with every profile, and what the API answers about it.

For the tests that change those tables underneath (migrations, time
partitions): fill, read the answers, change the schema, and the answers must
be the same.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from server.ingest.dumps import ingest_dump
from server.settings import Settings
from server.store.repository import Store
from server.upkeep.jobs import build_rollups
from tests.support.helpers import push, top
from tests.support.tools import DATA

DAY = 86_400
DAY0 = 1_788_220_800  # 2026-09-01T00:00:00Z
NS = 10**9


def fill(client: TestClient, store: Store, settings: Settings) -> None:
    """Profiles of two series over two days (and their rollups), and two goroutine dumps."""
    for hour in (1, 2, 25):
        push(client, DATA / "cpu.pb.gz", service="api", time=str(DAY0 + hour * 3600))
        push(client, DATA / "cpu2.pb.gz", service="web", time=str(DAY0 + hour * 3600 + 60))
    build_rollups(store, now_ns=(DAY0 + 3 * DAY) * NS)
    dump = (DATA / "goroutine_debug2.txt").read_bytes()
    for minute in (0, 1):
        ingest_dump(store, settings, dump, {"service": "api", "instance": "a:1"}, (DAY0 + minute * 60) * NS)


def answers(client: TestClient) -> dict[str, Any]:
    """What the API says about that data: raw and rolled-up top tables, a trend, profiles, goroutine groups."""
    whole = {"from": str(DAY0 - 40 * DAY), "to": str(DAY0 + 400 * DAY)}
    trend = client.get("/api/v1/timeseries", params={"type": "cpu", "step": "1h", **whole})
    listed = client.get("/api/v1/profiles", params={"type": "cpu", **whole})
    groups = client.get("/api/v1/goroutines/groups", params={"at": str(DAY0 + 90)})
    assert trend.status_code == 200 and listed.status_code == 200 and groups.status_code == 200
    return {
        "top": top(client, type="cpu", **whole),
        "day": top(client, type="cpu", **{"from": str(DAY0), "to": str(DAY0 + DAY - 1)}),
        "trend": trend.json(),
        "profiles": listed.json(),
        "groups": groups.json(),
    }
