"""NUL characters get the same answer on SQLite and PostgreSQL: stored with U+FFFD, or refused naming the field.

PostgreSQL's ``text`` cannot hold NUL; SQLite's can. Before, a NUL in a pprof
function name or label, or in a series label value, was stored by SQLite and
a 500 on PostgreSQL, which jammed a pushing collector's queue. Now:

- strings inside a profile or a goroutine dump (function and file names,
  sample labels, sample types) are data a program produced: the NUL becomes
  U+FFFD, as undecodable bytes already do, and the profile is stored (with a
  warning in the log);
- series label values (and the service) are what selectors match: changing
  them would store a series nobody asked for, so they are refused (400).
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from server.pprof import profile_pb2
from server.store.models import SampleLabelset
from server.store.repository import Store

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

WHEN = "2026-09-01T10:00:00Z"


def profile_with_nuls() -> bytes:
    message = profile_pb2.Profile(
        string_table=["", "samples", "count", "main.a\x00b", "file\x00.go", "key\x00", "value\x00x", "cpu\x00"]
    )
    message.sample_type.add(type=1, unit=2)
    message.sample_type.add(type=7, unit=2)
    message.function.add(id=1, name=3, filename=4)
    location = message.location.add(id=1)
    location.line.add(function_id=1, line=3)
    sample = message.sample.add(location_id=[1], value=[5, 7])
    sample.label.add(key=5, str=6)
    return message.SerializeToString()


def test_nul_in_profile_strings_is_stored_as_the_replacement_character(client: TestClient, store: Store) -> None:
    response = client.post(
        "/api/v1/ingest", params={"service": "nul", "time": WHEN, "type": "cpu"}, content=profile_with_nuls()
    )
    assert response.status_code == 201, response.text
    assert response.json()["totals"] == {"samples": 5, "cpu\ufffd": 7}
    top = client.get("/api/v1/top", params={"type": "cpu", "from": "0", "to": "now+1h", "sample": "samples"})
    assert [(row["name"], row["flat"]) for row in top.json()["rows"]] == [("main.a\ufffdb", 5)]
    with store.engine.connect() as conn:
        (labels,) = conn.execute(select(SampleLabelset.labels)).scalars().all()
    assert labels == [["key\ufffd", "value\ufffdx"]]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"service": "nul", "label": "env=a\x00b"}, "label: the value of 'env' contains a NUL character"),
        ({"service": "a\x00b"}, "label: the value of 'service' contains a NUL character"),
    ],
)
def test_nul_in_a_series_label_is_refused(
    client: TestClient, store: Store, params: dict[str, str], message: str
) -> None:
    for path, body in (("/api/v1/ingest", profile_with_nuls()), ("/api/v1/goroutines/ingest", DUMP)):
        response = client.post(path, params={"time": WHEN, "type": "cpu", **params}, content=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == message
    assert store.series.all() == []


DUMP = b"""goroutine 1 [chan receive]:
main.le\x00ak(0x1)
\tmain\x00.go:7 +0x1d
created by main.st\x00art
\tmain.go:3 +0x10

"""


def test_nul_in_a_goroutine_dump_is_stored_as_the_replacement_character(client: TestClient, store: Store) -> None:
    response = client.post("/api/v1/goroutines/ingest", params={"service": "nul", "time": WHEN}, content=DUMP)
    assert response.status_code == 201, response.text
    groups = client.get("/api/v1/goroutines/groups", params={"at": "now+1h"}).json()
    (group,) = groups["instances"][0]["groups"]
    assert group["function"] == "main.le\ufffdak" and group["created_by"] == "main.st\ufffdart"
    assert group["location"] == "main\ufffd.go:7"
