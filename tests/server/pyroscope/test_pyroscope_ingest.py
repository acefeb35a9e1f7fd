"""``POST /ingest`` as the pyroscope-go SDK uses it: its real uploads replayed byte for byte, SDK-shaped
uploads made from them at explicit times, and every kind of bad input refused with a clear 4xx.

Every stored number is checked against ``go tool pprof`` on the upload's own profile part.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import anyio
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from server.app import create_app
from server.auth.tokens import Scope, TokenEntry, digest
from server.errors import InvalidParameter
from server.pprof import decode, encode
from server.pprof.merge import scale
from server.pyroscope.multipart import read_form
from server.pyroscope.proto.querier.v1 import querier_pb2
from server.pyroscope.series import parse_app_key
from server.pyroscope.uploadparams import parse_unix_time_ns
from server.settings import Settings
from server.store.models import ProfileRow
from server.store.repository import Store
from server.syntax.times import format_time
from tests.conftest import TEST_RETENTION
from tests.support.browser import serving
from tests.support.helpers import UNITS, top
from tests.support.oracle import pprof_top
from tests.support.pyroscope_captures import KINDS, SERVICE, Capture, all_captures, form, load

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

#: The captures' two upload rounds (Unix seconds): every profile of a round falls in its window.
ROUNDS = [(1796423479, 1796423486), (1796423491, 1796423496)]
Top = Callable[..., dict[str, Any]]


def profiles(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ProfileRow)).scalar_one())


def check_against_pprof(get_top: Top, capture: Capture, window: tuple[int, int], tmp_path: Path) -> None:
    """Every sample type of every kind the capture became: total, flat and cum equal pprof's on its profile part."""
    path = capture.profile_file(tmp_path)
    for kind, sample_types in KINDS[capture.what].items():
        for sample in sample_types:
            ours = get_top(type=kind, sample=sample, aggregation="sum", query=f'{{service="{SERVICE}"}}',
                           **{"from": str(window[0]), "to": str(window[1])})  # fmt: skip
            assert ours["profiles"] == 1, (capture.index, kind, ours)
            expected = pprof_top([path], sample, UNITS[sample])
            assert ours["total"] == expected.total, (capture.index, kind, sample)
            assert {row["name"]: (row["flat"], row["cum"]) for row in ours["rows"]} == expected.rows


def replay(base_url: str, capture: Capture) -> tuple[int, bytes]:
    """Send the capture exactly: its method, path and query, headers and body bytes."""
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
    try:
        connection.putrequest(capture.method, capture.path, skip_accept_encoding=True)
        for name, value in capture.headers.items():
            connection.putheader(name, value)
        connection.endheaders(capture.body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_sdks_real_uploads_replayed_store_what_pprof_reads(database_url: str, tmp_path: Path) -> None:
    with serving(database_url) as live:
        for capture in all_captures():
            status, body = replay(live.url, capture)
            assert status == 200, body  # the SDK takes anything else for a failed upload
            stored = json.loads(body)["profiles"]
            assert [p["type"] for p in stored] == list(KINDS[capture.what])
            for profile in stored:
                labels = profile["series"]["labels"]
                assert labels["service"] == SERVICE and labels["env"] == "test" and labels["region"] == "eu"
                assert labels["__session_id__"] == "77e425ea48b3919f" and labels["pyroscope_spy"] == "gospy"
                assert labels.get("__name__") == ("goroutines" if capture.what == "goroutines" else None)

        def get_top(**params: str) -> dict[str, Any]:
            result: dict[str, Any] = live.get("/api/v1/top", **params)
            return result

        for capture in all_captures():
            check_against_pprof(get_top, capture, ROUNDS[0 if capture.index < 5 else 1], tmp_path)


def upload(client: TestClient, parts: dict[str, bytes], **params: str) -> Any:
    content_type, body = form(parts)
    return client.post(
        "/ingest?" + urlencode({"name": f"{SERVICE}{{env=test}}", "spyName": "gospy", **params}),
        content=body,
        headers={"Content-Type": content_type},
    )


@pytest.mark.parametrize("digits_per_ns", [10**9, 10**6, 10**3, 1], ids=["s", "ms", "us", "ns"])
def test_sdk_shaped_uploads_at_explicit_times_in_every_unit(
    client: TestClient, tmp_path: Path, digits_per_ns: int
) -> None:
    start = 1_790_000_000  # 2026-09-21T14:13:20Z, well inside the tests' retention
    for index in range(5):  # heap, goroutines, block, mutex, cpu
        capture = load(index)
        at_s = start + 100 * index
        at = str(at_s * 10**9 // digits_per_ns)
        response = upload(client, capture.parts(), **{"from": at, "until": str(int(at) + 10)})
        assert response.status_code == 200, response.text
        assert {p["time"] for p in response.json()["profiles"]} == {format_time(at_s * 10**9)}
        check_against_pprof(lambda **p: top(client, **p), capture, (at_s - 1, at_s + 1), tmp_path)


def test_a_raw_pprof_body_is_accepted(client: TestClient, tmp_path: Path) -> None:
    cpu = load(4)
    response = client.post(
        "/ingest", params={"name": "raw{env=test}", "from": "1790000000"}, content=cpu.parts()["profile"]
    )
    assert response.status_code == 200, response.text
    assert [p["type"] for p in response.json()["profiles"]] == ["cpu"]
    heap = load(0).parts()["profile"]
    response = client.post("/ingest", params={"name": "raw", "from": "1790000100"}, content=gzip.decompress(heap))
    assert [p["type"] for p in response.json()["profiles"]] == ["heap", "allocs"]  # no config needed for memory
    expected = pprof_top([load(0).profile_file(tmp_path)], "alloc_space", "bytes").total
    assert top(client, type="allocs", query='{service="raw"}')["total"] == expected


def test_sample_type_config_says_what_the_profile_is(client: TestClient) -> None:
    block, mutex, goroutines = load(2).parts(), load(3).parts(), load(1).parts()
    at = {"from": "1790000000"}
    # The SDK's display names decide: the block profile sent with the mutex profile's config is a mutex one.
    relabelled = upload(client, {"profile": block["profile"], "sample_type_config": mutex["sample_type_config"]}, **at)
    assert [p["type"] for p in relabelled.json()["profiles"]] == ["mutex"]
    named = upload(client, goroutines, **at).json()["profiles"][0]
    assert named["type"] == "goroutine" and named["series"]["labels"]["__name__"] == "goroutines"
    # Without a config a contention profile is told apart by its leaf frames, and goroutines keep Go's name.
    plain = upload(client, {"profile": block["profile"]}, **at).json()["profiles"][0]
    assert plain["type"] == "block"
    scraped_name = upload(client, {"profile": goroutines["profile"]}, **at).json()["profiles"][0]
    assert scraped_name["type"] == "goroutine" and "__name__" not in scraped_name["series"]["labels"]


def test_an_old_sdks_prev_profile_is_subtracted(client: TestClient, tmp_path: Path) -> None:
    heap = load(0).parts()
    before = decode(heap["profile"])
    now = scale(before, 3)  # three times the counters: the interval allocated twice what came before
    now_file = tmp_path / "now.pb.gz"
    now_file.write_bytes(encode(now))
    before_file = load(0).profile_file(tmp_path)
    response = upload(
        client,
        {
            "profile": now_file.read_bytes(),
            "prev_profile": heap["profile"],
            "sample_type_config": heap["sample_type_config"],
        },
        **{"from": "1790000000"},
    )
    assert response.status_code == 200, response.text
    query = {"query": f'{{service="{SERVICE}"}}', "aggregation": "sum"}
    for sample in ("alloc_space", "alloc_objects"):  # the delta: now - before = 2 x before
        assert (
            top(client, type="allocs", sample=sample, **query)["total"]
            == 2 * pprof_top([before_file], sample, UNITS[sample]).total
        )
    for sample in ("inuse_space", "inuse_objects"):  # a snapshot: the current profile's
        assert (
            top(client, type="heap", sample=sample, **query)["total"]
            == pprof_top([now_file], sample, UNITS[sample]).total
        )


def test_a_retry_with_the_same_idempotency_key_stores_nothing_twice(client: TestClient, store: Store) -> None:
    parts = load(0).parts()
    first = upload(client, parts, **{"from": "1790000000"}, idempotency_key="sdk-upload-1")
    count = profiles(store)
    again = upload(client, parts, **{"from": "1790000000"}, idempotency_key="sdk-upload-1")
    assert first.status_code == again.status_code == 200
    assert profiles(store) == count == 2
    assert [p["id"] for p in again.json()["profiles"]] == [p["id"] for p in first.json()["profiles"]]
    assert all(p.get("replayed") for p in again.json()["profiles"])


def _bad_uploads() -> dict[str, tuple[dict[str, str], dict[str, str], bytes, int, str]]:
    """case -> (query, headers, body, status, message)"""
    heap = load(0)
    good = {"name": "app{env=test}", "from": "1790000000"}
    content_type, body = heap.headers["Content-Type"], heap.body
    no_profile = form({"sample_type_config": heap.parts()["sample_type_config"]})
    garbage = form({"profile": b"\x1f\x8b not really gzip"})
    empty = form({"profile": b""})
    not_pprof = form({"profile": gzip.compress(b"\x12\x7fnot a message")})
    bad_config = form({"profile": heap.parts()["profile"], "sample_type_config": b"{not json"})
    one = form({"profile": heap.parts()["profile"]}, boundary="dup")
    twice = (one[0], one[1].replace(b"--dup--\r\n", b"") + one[1])
    multipart = {"Content-Type": content_type}
    return {
        "format": ({**good, "format": "jfr"}, multipart, body, 400, "format: 'jfr' is not served"),
        "truncated_multipart": (good, multipart, body[: len(body) // 2], 400, "truncated multipart"),
        "no_boundary": (good, {"Content-Type": "multipart/form-data"}, body, 400, "without a boundary"),
        "wrong_boundary": (good, {"Content-Type": "multipart/form-data; boundary=nope"}, body, 400, "multipart"),
        "no_profile_part": (good, {"Content-Type": no_profile[0]}, no_profile[1], 400, "no 'profile' part"),
        "profile_part_twice": (good, {"Content-Type": twice[0]}, twice[1], 400, "two 'profile' parts"),
        "empty_profile": (good, {"Content-Type": empty[0]}, empty[1], 400, "profile: empty"),
        "garbage_gzip": (good, {"Content-Type": garbage[0]}, garbage[1], 400, "decompressing profile"),
        "garbage_pprof": (good, {"Content-Type": not_pprof[0]}, not_pprof[1], 400, "parsing profile"),
        "bad_config": (good, {"Content-Type": bad_config[0]}, bad_config[1], 400, "sample_type_config: not JSON"),
        "no_app_name": ({**good, "name": "{env=test}"}, multipart, body, 400, "name: '{env=test}' has no application"),
        "tag_without_value": ({**good, "name": "app{env}"}, multipart, body, 400, "the tag 'env' is not key=value"),
        "unclosed_tags": ({**good, "name": "app{env=x"}, multipart, body, 400, "does not end with }"),
        "bad_label_name": ({**good, "name": "app{1env=x}"}, multipart, body, 400, "not a valid label name"),
        "no_name": ({"from": "1790000000"}, multipart, body, 422, "name"),
        "from_not_a_number": (
            {**good, "from": "yesterday"},
            multipart,
            body,
            400,
            "from: 'yesterday' is not a Unix time",
        ),
        "from_after_until": ({**good, "until": "1780000000"}, multipart, body, 400, "is after until"),
        "too_many_digits": ({**good, "from": "1" * 25}, multipart, body, 400, "more digits than a Unix time"),
        "too_old": ({**good, "from": "1"}, multipart, body, 400, "older than the raw retention"),
        "bad_sample_rate": ({**good, "sampleRate": "fast"}, multipart, body, 400, "sampleRate: 'fast'"),
        "bad_aggregation": ({**good, "aggregationType": "max"}, multipart, body, 400, "aggregationType: 'max'"),
    }


BAD = _bad_uploads()


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_uploads_are_a_clear_4xx_and_store_nothing(sqlite_url: str, case: str) -> None:
    query, headers, body, status, message = BAD[case]
    retention = "30d" if case == "too_old" else TEST_RETENTION
    with TestClient(create_app(Settings(database_url=sqlite_url, retention_raw=retention))) as client:
        response = client.post("/ingest?" + urlencode(query), content=body, headers=headers)
        assert response.status_code == status, response.text
        assert message in response.json()["error"]
        assert client.get("/api/v1/series").json()["series"] == []


def test_an_upload_past_the_body_limit_is_413(sqlite_url: str) -> None:
    cpu = load(4)
    settings = Settings(database_url=sqlite_url, retention_raw=TEST_RETENTION, max_body_bytes=4096)
    with TestClient(create_app(settings)) as client:
        response = client.post(cpu.path, content=cpu.body, headers=cpu.headers)
        assert response.status_code == 413, response.text
        assert "limit of 4096 bytes" in response.json()["error"]
        # Without a Content-Length (chunked) it is refused at the first byte past the limit.
        response = client.post(
            cpu.path,
            content=iter([cpu.body[:3000], cpu.body[3000:]]),
            headers={"Content-Type": cpu.headers["Content-Type"]},
        )
        assert response.status_code == 413 and "more than 4096 bytes" in response.json()["error"]
        assert client.get("/api/v1/series").json()["series"] == []


INGEST_TOKEN, READ_TOKEN = "sy_pyroscope-ingest-token-for-tests", "sy_pyroscope-read-token-for-tests"


@pytest.fixture
def secured(sqlite_url: str) -> Iterator[TestClient]:
    entries = [
        TokenEntry(name="sdk", scopes=[Scope.INGEST], sha256=digest(INGEST_TOKEN)),
        TokenEntry(name="grafana", scopes=[Scope.READ], sha256=digest(READ_TOKEN)),
    ]
    settings = Settings(database_url=sqlite_url, retention_raw=TEST_RETENTION, auth_tokens=entries)
    with TestClient(create_app(settings)) as client:
        yield client


def basic(password: str, user: str = "123456") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_the_sdks_credentials(secured: TestClient) -> None:
    capture = load(4)

    def send(auth: dict[str, str]) -> Any:
        return secured.post(capture.path, content=capture.body, headers={**capture.headers, **auth})

    assert send(basic(INGEST_TOKEN)).status_code == 200  # BasicAuthUser/BasicAuthPassword: the token as password
    assert send({"Authorization": f"Bearer {INGEST_TOKEN}"}).status_code == 200  # the SDK's older AuthToken
    for refused in ({}, basic("wrong"), basic(INGEST_TOKEN[:-1]), {"Authorization": f"Bearer {READ_TOKEN[::-1]}"}):
        response = send(refused)
        assert response.status_code == 401 and response.json() == {"error": "authentication required", "status": 401}
    response = send(basic(READ_TOKEN))
    assert response.status_code == 403 and response.json() == {"error": "forbidden", "status": 403}
    assert len(secured.get("/api/v1/series", headers=basic(READ_TOKEN)).json()["series"]) == 1


@settings(max_examples=200, derandomize=True, deadline=None, database=None)
@given(st.text(max_size=120), st.text(alphabet="0123456789x -", max_size=30))
def test_names_and_times_are_parsed_or_refused_by_name(name: str, when: str) -> None:
    # Whatever a client sends as name= or from=, the answer is a result or an error naming the parameter.
    try:
        labels = parse_app_key(name).labels
        assert labels["service"] == name.partition("{")[0].strip()
    except InvalidParameter as exc:
        assert exc.parameter == "name"
    try:
        assert parse_unix_time_ns(when, "from") >= 0
    except InvalidParameter as exc:
        assert exc.parameter == "from"


@settings(max_examples=100, derandomize=True, deadline=None, database=None)
@given(st.integers(min_value=0, max_value=1784), st.binary(max_size=16), st.integers(min_value=1, max_value=700))
def test_a_mangled_multipart_body_is_parsed_or_refused_by_name(cut: int, junk: bytes, chunk: int) -> None:
    capture = load(0)
    body = capture.body[:cut] + junk + capture.body[cut + len(junk) :]

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), chunk):
            yield body[start : start + chunk]

    try:
        parts = anyio.run(read_form, chunks(), capture.headers["Content-Type"], 1 << 20)
        assert set(parts) <= {"profile", "sample_type_config", "prev_profile"}
    except InvalidParameter as exc:
        assert exc.parameter == "body"


def test_what_the_sdk_uploaded_is_what_grafanas_queries_read(client: TestClient, tmp_path: Path) -> None:
    # The heap upload's two halves answer Grafana's memory types; the SDK's goroutines keep their own name.
    for capture in all_captures()[:5]:
        assert client.post(capture.path, content=capture.body, headers=capture.headers).status_code == 200
    proto = {"Content-Type": "application/proto"}
    start, end = ROUNDS[0][0] * 1000, ROUNDS[0][1] * 1000
    types = querier_pb2.ProfileTypesResponse.FromString(
        client.post(
            "/querier.v1.QuerierService/ProfileTypes",
            content=querier_pb2.ProfileTypesRequest(start=start, end=end).SerializeToString(),
            headers=proto,
        ).content
    )
    assert {t.ID for t in types.profile_types} == {
        "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
        "process_cpu:samples:count:cpu:nanoseconds",
        "memory:inuse_space:bytes:space:bytes",
        "memory:inuse_objects:count:space:bytes",
        "memory:alloc_space:bytes:space:bytes",
        "memory:alloc_objects:count:space:bytes",
        "goroutines:goroutine:count:goroutine:count",
        "mutex:contentions:count:contentions:count",
        "mutex:delay:nanoseconds:contentions:count",
        "block:contentions:count:contentions:count",
        "block:delay:nanoseconds:contentions:count",
    }
    heap = load(0).profile_file(tmp_path)
    for type_id, sample in (
        ("memory:alloc_space:bytes:space:bytes", "alloc_space"),
        ("memory:inuse_space:bytes:space:bytes", "inuse_space"),
    ):
        request = querier_pb2.SelectMergeStacktracesRequest(
            profile_typeID=type_id, label_selector=f'{{service_name="{SERVICE}"}}', start=start, end=end
        )
        answer = querier_pb2.SelectMergeStacktracesResponse.FromString(
            client.post(
                "/querier.v1.QuerierService/SelectMergeStacktraces",
                content=request.SerializeToString(),
                headers=proto,
            ).content
        )
        assert answer.flamegraph.total == pprof_top([heap], sample, "bytes").total
