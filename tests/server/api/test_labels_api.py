"""Label discovery: pprof sample labels (``pprof.Do``) offered beside series labels, marked, by selector and range.

``cpu.pb.gz`` is a real capture of the Go demo, whose CPU work runs under
``pprof.Do`` labels ``handler="/checkout"`` and ``handler="/search"``;
``heap.pb.gz`` has no sample labels.
"""

from __future__ import annotations

import gzip

from fastapi.testclient import TestClient

from server.pprof import profile_pb2
from tests.support.helpers import push
from tests.support.tools import DATA

T = 1_800_000_000  # seconds; every push is stamped, so nothing depends on today's date
RANGE = {"from": str(T - 600), "to": str(T + 600)}


def relabelled(value: str) -> bytes:
    """The CPU capture with every ``handler`` sample label set to ``value`` (as another build would label it)."""
    message = profile_pb2.Profile()
    message.ParseFromString(gzip.decompress((DATA / "cpu.pb.gz").read_bytes()))
    message.string_table.append(value)
    index = len(message.string_table) - 1
    for sample in message.sample:
        for label in sample.label:
            if message.string_table[label.key] == "handler":
                label.str = index
    return gzip.compress(message.SerializeToString())


def test_sample_labels_are_offered_and_marked(client: TestClient) -> None:
    push(client, DATA / "cpu.pb.gz", service="api", label="env=prod", time=str(T))
    push(client, DATA / "heap.pb.gz", service="db", time=str(T))
    names = client.get("/api/v1/labels", params=RANGE).json()
    assert names == {"names": ["env", "handler", "service"], "sample_labels": ["handler"]}
    # heap profiles carry no sample labels: only series labels for that type
    heap = client.get("/api/v1/labels", params={"type": "heap", **RANGE}).json()
    assert heap == {"names": ["service"], "sample_labels": []}
    values = client.get("/api/v1/labels/handler/values", params={"type": "cpu", **RANGE}).json()
    assert values == {"name": "handler", "values": ["/checkout", "/search"], "sample_label": True}
    series = client.get("/api/v1/labels/env/values", params={"type": "cpu", **RANGE}).json()
    assert series == {"name": "env", "values": ["prod"], "sample_label": False}
    # the values offered are the ones a query with that matcher finds
    for handler in values["values"]:
        query = {"type": "cpu", "query": f'{{handler="{handler}"}}', **RANGE}
        assert client.get("/api/v1/top", params=query).json()["total"] > 0


def test_sample_labels_honour_the_selector_and_the_time_range(client: TestClient) -> None:
    push(client, DATA / "cpu.pb.gz", service="api", time=str(T))
    client.post("/api/v1/ingest", params={"service": "web", "time": str(T + 3600)}, content=relabelled("/cart"))

    def handlers(**params: str) -> list[str]:
        response = client.get("/api/v1/labels/handler/values", params={"type": "cpu", **params})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["sample_label"] is True
        return list(body["values"])

    assert handlers(**RANGE) == ["/checkout", "/search"]  # web's profile is an hour later
    assert handlers(**{"from": str(T - 600), "to": str(T + 7200)}) == ["/cart", "/checkout", "/search"]
    wide = {"from": str(T - 600), "to": str(T + 7200)}
    assert handlers(query='{service="web"}', **wide) == ["/cart"]
    # a matcher on a sample label narrows the other sample labels' sets too
    assert handlers(query='{handler=~"/c.*"}', **wide) == ["/cart", "/checkout"]
    names = client.get("/api/v1/labels", params={"query": '{service="nothing"}', **wide}).json()
    assert names == {"names": [], "sample_labels": []}
    # a bad selector or range is the client's mistake, named
    bad = client.get("/api/v1/labels", params={"query": "{service=", **wide})
    assert bad.status_code == 400 and bad.json()["error"].startswith("query: ")
    backwards = client.get("/api/v1/labels", params={"from": str(T + 10), "to": str(T)})
    assert backwards.status_code == 400 and "must be before" in backwards.json()["error"]
