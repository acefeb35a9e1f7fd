"""``push.v1.PusherService/Push`` as Grafana Alloy's ``pyroscope.write`` sends it, in binary protobuf and JSON,
built with our generated stubs from the pyroscope-go SDK's real profiles: stored numbers equal
``go tool pprof``'s, retries store nothing twice, cumulative memory is subtracted, bad input is refused.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from google.protobuf import json_format
from sqlalchemy import func, select

from server.app import create_app
from server.auth.tokens import Scope, TokenEntry, digest
from server.pprof import decode, encode
from server.pprof.merge import scale
from server.pyroscope.proto.push.v1 import push_pb2
from server.pyroscope.proto.types.v1 import types_pb2
from server.settings import Settings
from server.store import stacks
from server.store.models import ProfileRow
from server.store.repository import Store
from tests.conftest import TEST_RETENTION
from tests.support.helpers import UNITS, top
from tests.support.oracle import pprof_top
from tests.support.pyroscope_captures import KINDS, load

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

PATH = "/push.v1.PusherService/Push"
PROTO = {"Content-Type": "application/proto", "Connect-Protocol-Version": "1"}
JSON = {"Content-Type": "application/json", "Connect-Protocol-Version": "1"}
#: Alloy's __name__ for what each capture holds.
NAMES = {"heap": "memory", "goroutines": "goroutines", "block": "block", "mutex": "mutex", "cpu": "process_cpu"}


def series(name: str, samples: list[tuple[bytes, str]], **labels: str) -> push_pb2.RawProfileSeries:
    pairs = {"__name__": name, "service_name": "alloyed", "instance": "10.0.0.7:6060", **labels}
    return push_pb2.RawProfileSeries(
        labels=[types_pb2.LabelPair(name=k, value=v) for k, v in pairs.items()],
        samples=[push_pb2.RawSample(raw_profile=data, ID=sample_id) for data, sample_id in samples],
    )


def send(client: TestClient, request: push_pb2.PushRequest, encoding: str = "proto", **headers: str) -> Any:
    if encoding == "proto":
        return client.post(PATH, content=request.SerializeToString(), headers={**PROTO, **headers})
    return client.post(PATH, content=json_format.MessageToJson(request), headers={**JSON, **headers})


def profiles(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ProfileRow)).scalar_one())


@pytest.mark.parametrize("encoding", ["proto", "json"])
def test_alloys_push_stores_what_pprof_reads(client: TestClient, store: Store, tmp_path: Path, encoding: str) -> None:
    captures = [load(index) for index in range(5)]  # heap, goroutines, block, mutex, cpu
    request = push_pb2.PushRequest(
        series=[
            series(NAMES[c.what], [(c.parts()["profile"], f"id-{c.index}")], __delta__="false", env="prod")
            for c in captures
        ]
    )
    response = send(client, request, encoding)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == ("application/proto" if encoding == "proto" else "application/json")
    assert profiles(store) == 6  # the memory profile is stored as heap and as allocs
    for capture in captures:
        path = capture.profile_file(tmp_path)
        for kind, sample_types in KINDS[capture.what].items():
            for sample in sample_types:
                ours = top(client, type=kind, sample=sample, aggregation="sum", query='{service="alloyed", env="prod"}')
                expected = pprof_top([path], sample, UNITS[sample])
                assert ours["profiles"] == 1 and ours["total"] == expected.total, (kind, sample)
                assert {r["name"]: (r["flat"], r["cum"]) for r in ours["rows"]} == expected.rows
    labels = client.get("/api/v1/series", params={"type": "goroutine"}).json()["series"][0]["labels"]
    assert labels == {"service": "alloyed", "instance": "10.0.0.7:6060", "env": "prod", "__name__": "goroutines"}
    # A retried Push (Alloy retries unavailable, internal, resource_exhausted...) stores nothing twice.
    assert send(client, request, encoding).status_code == 200
    assert profiles(store) == 6


def test_samples_without_ids_are_recognised_by_their_content(client: TestClient, store: Store) -> None:
    cpu = load(4).parts()["profile"]
    request = push_pb2.PushRequest(series=[series("process_cpu", [(cpu, "")], __delta__="false")])
    assert send(client, request).status_code == 200
    assert send(client, request).status_code == 200
    assert profiles(store) == 1
    other_series = push_pb2.PushRequest(series=[series("process_cpu", [(cpu, "")], instance="10.0.0.8:6060")])
    assert send(client, other_series).status_code == 200
    assert profiles(store) == 2


def test_cumulative_memory_is_subtracted_from_the_series_previous_profile(client: TestClient, tmp_path: Path) -> None:
    # Without __delta__="false" a memory profile's alloc_* count since the process started (Go's own heap
    # profile, as an Alloy that does not subtract sends it): the server subtracts, as Pyroscope does.
    first = load(0).parts()["profile"]
    base = decode(first)
    first_file = tmp_path / "first.pb.gz"
    first_file.write_bytes(first)
    later = encode(scale(base, 4))

    def push_memory(data: bytes, sample_id: str) -> list[str]:
        response = send(client, push_pb2.PushRequest(series=[series("memory", [(data, sample_id)])]))
        assert response.status_code == 200, response.text
        found = client.get("/api/v1/series").json()["series"]
        return sorted({s["type"] for s in found})

    assert push_memory(first, "m1") == ["heap"]  # the baseline: only its in-use half is stored
    assert push_memory(later, "m2") == ["allocs", "heap"]
    query = {"query": '{service="alloyed"}', "aggregation": "sum"}
    for sample in ("alloc_space", "alloc_objects"):  # 4x - 1x
        expected = 3 * pprof_top([first_file], sample, UNITS[sample]).total
        assert top(client, type="allocs", sample=sample, **query)["total"] == expected
    # A counter that went down means the process restarted: the new profile is the delta since then.
    push_memory(first, "m3")
    expected = 4 * pprof_top([first_file], "alloc_space", "bytes").total
    assert top(client, type="allocs", sample="alloc_space", **query)["total"] == expected


def test_one_bad_sample_costs_only_itself(client: TestClient, store: Store) -> None:
    good, cpu = load(3).parts()["profile"], load(4).parts()["profile"]
    request = push_pb2.PushRequest(
        series=[
            series("mutex", [(good, "ok-1"), (b"\x1f\x8b\x08 broken", "bad-1")], __delta__="false"),
            series("process_cpu", [(cpu, "ok-2")], __delta__="false"),
        ]
    )
    response = send(client, request)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_argument"
    assert body["message"].startswith("series 0 sample 1: decompressing profile")
    assert body["message"].endswith("2 profiles were stored")
    assert profiles(store) == 2


def _bad_requests() -> dict[str, tuple[bytes, dict[str, str], str]]:
    """case -> (body, headers, message); each is Connect's invalid_argument, status 400"""
    cpu = load(4).parts()["profile"]

    def request(*items: push_pb2.RawProfileSeries) -> bytes:
        return push_pb2.PushRequest(series=list(items)).SerializeToString()

    no_service = push_pb2.RawProfileSeries(
        labels=[types_pb2.LabelPair(name="__name__", value="process_cpu")],
        samples=[push_pb2.RawSample(raw_profile=cpu, ID="x")],
    )
    twice = series("process_cpu", [(cpu, "y")])
    twice.labels.append(types_pb2.LabelPair(name="service_name", value="again"))
    octet = {"Content-Type": "application/octet-stream"}
    renamed = encode(_renamed(cpu))
    return {
        "not_protobuf": (b"\xff\xff\xff not protobuf", PROTO, "not a binary push.v1.PushRequest"),
        "not_json": (b"{series: nope", JSON, "not JSON of push.v1.PushRequest"),
        "octet_stream": (request(), octet, "Content-Type: application/octet-stream is not served"),
        "no_service_name": (request(no_service), PROTO, "no service_name label"),
        "label_twice": (request(twice), PROTO, "'service_name' is given twice"),
        "bad_label_name": (request(series("process_cpu", [(cpu, "z")], **{"1x": "y"})), PROTO, "not a valid label"),
        "empty_profile": (request(series("process_cpu", [(b"", "e")])), PROTO, "profile: empty"),
        "not_pprof": (request(series("process_cpu", [(b"\x12\x7fnope", "n")])), PROTO, "parsing profile"),
        "unknown_kind": (request(series("fgprof", [(renamed, "f")])), PROTO, "cannot tell the profile type"),
    }


def _renamed(data: bytes) -> Any:
    """A profile with sample types Stackyard has no kind for (fgprof's, say)."""
    profile = decode(data)
    profile.sample_types = [type(vt)("wallclock", vt.unit) for vt in profile.sample_types]
    profile.default_sample_type = ""
    return profile


BAD = _bad_requests()


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_pushes_are_refused_in_connects_terms(sqlite_url: str, case: str) -> None:
    body, headers, message = BAD[case]
    with TestClient(create_app(Settings(database_url=sqlite_url, retention_raw=TEST_RETENTION))) as client:
        response = client.post(PATH, content=body, headers=headers)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json()["code"] == "invalid_argument"
        assert message in response.json()["message"]
        assert client.get("/api/v1/series").json()["series"] == []


def test_a_push_past_the_body_limit_is_resource_exhausted(sqlite_url: str) -> None:
    cpu = load(4).parts()["profile"]
    body = push_pb2.PushRequest(series=[series("process_cpu", [(cpu, "big")])]).SerializeToString()
    settings = Settings(database_url=sqlite_url, retention_raw=TEST_RETENTION, max_body_bytes=len(body) - 1)
    with TestClient(create_app(settings)) as client:
        response = client.post(PATH, content=body, headers=PROTO)
        assert response.status_code == 429 and response.json()["code"] == "resource_exhausted"
        assert client.get("/api/v1/series").json()["series"] == []


TOKEN = "sy_alloy-ingest-token-for-these-tests"


def test_alloys_credentials(sqlite_url: str) -> None:
    entries = [TokenEntry(name="alloy", scopes=[Scope.INGEST], sha256=digest(TOKEN))]
    settings = Settings(database_url=sqlite_url, retention_raw=TEST_RETENTION, auth_tokens=entries)
    cpu = load(4).parts()["profile"]
    request = push_pb2.PushRequest(series=[series("process_cpu", [(cpu, "auth")])])
    with TestClient(create_app(settings)) as client:
        # pyroscope.write's basic_auth { username, password }: the token is the password.
        good = "Basic " + base64.b64encode(f"1234:{TOKEN}".encode()).decode()
        assert send(client, request, Authorization=good).status_code == 200
        assert send(client, request, Authorization=f"Bearer {TOKEN}").status_code == 200
        wrong = "Basic " + base64.b64encode(b"1234:guess").decode()
        for auth in ({}, {"Authorization": wrong}):
            response = send(client, request, **auth)
            assert response.status_code == 401
            assert response.json() == {"code": "unauthenticated", "message": "authentication required"}


def test_pushes_and_uploads_through_ingest_worker_processes(sqlite_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=sqlite_url, retention_raw=TEST_RETENTION, ingest_processes=2)
    heap, cpu = load(0), load(4)
    with TestClient(create_app(settings)) as client:
        uploaded = client.post(heap.path, content=heap.body, headers=heap.headers)
        assert uploaded.status_code == 200, uploaded.text
        assert [p["type"] for p in uploaded.json()["profiles"]] == ["heap", "allocs"]
        pushed = push_pb2.PushRequest(series=[series("process_cpu", [(cpu.parts()["profile"], "w1")])])
        assert send(client, pushed).status_code == 200
        assert send(client, pushed).status_code == 200  # a retry, replayed by whichever worker takes it
        expected = pprof_top([cpu.profile_file(tmp_path)], "cpu", "nanoseconds").total
        ours = top(client, type="cpu", query='{service="alloyed"}', aggregation="sum")
        assert ours["profiles"] == 1 and ours["total"] == expected
        refused = send(client, push_pb2.PushRequest(series=[series("process_cpu", [(b"junk", "w2")])]))
        assert refused.status_code == 400 and json.loads(refused.text)["code"] == "invalid_argument"


@pytest.mark.parametrize("encoding", ["proto", "json"])
def test_a_full_stack_tree_answers_resource_exhausted(
    client: TestClient, store: Store, monkeypatch: pytest.MonkeyPatch, encoding: str
) -> None:
    heap = push_pb2.PushRequest(series=[series("memory", [(load(0).parts()["profile"], "h")], __delta__="false")])
    assert send(client, heap).status_code == 200
    monkeypatch.setattr(stacks, "NODE_LIMIT", store.dedup.stacks.size + 1)  # a real tree cannot reach 2**32 here
    stored = profiles(store)
    cpu = push_pb2.PushRequest(series=[series("process_cpu", [(load(4).parts()["profile"], "c")], __delta__="false")])
    response = send(client, cpu, encoding)
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "resource_exhausted" and "node ids" in body["message"]
    assert profiles(store) == stored
