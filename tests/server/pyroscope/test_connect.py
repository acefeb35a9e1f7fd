"""The Connect unary transport on its own: encodings, compression, limits and errors.

A small service is mounted on the querier's descriptor with handlers written
here, so each transport rule is tested apart from any query (the querier's
own tests, tests/server/pyroscope/test_pyroscope_query.py, drive the real methods).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from google.protobuf import json_format

from server.errors import NotFound, PayloadTooLarge, TooExpensive
from server.pyroscope.connect import BodyLimits, ConnectError, ConnectService, accepts_gzip
from server.pyroscope.proto.querier.v1 import querier_pb2
from server.pyroscope.proto.types.v1 import types_pb2
from server.settings import Settings

SERVICE = querier_pb2.DESCRIPTOR.services_by_name["QuerierService"]
PROTO = {"Content-Type": "application/proto", "Connect-Protocol-Version": "1"}
JSON = {"Content-Type": "application/json", "Connect-Protocol-Version": "1"}
LIMIT = 64 * 1024


def _app() -> FastAPI:
    service = ConnectService(SERVICE, limits=lambda _settings: BodyLimits(LIMIT, 4 * LIMIT))

    @service.unary("ProfileTypes", querier_pb2.ProfileTypesRequest)
    def profile_types(message: querier_pb2.ProfileTypesRequest, _request: Request) -> querier_pb2.ProfileTypesResponse:
        """Echoes the range, and as many types as the range is long, so answers can be made big."""
        answer = querier_pb2.ProfileTypesResponse()
        for i in range(max(0, min(message.end - message.start, 10_000))):
            answer.profile_types.add(ID=f"t{i}:{message.start}:{message.end}", name="x" * 10)
        return answer

    @service.unary("LabelNames", types_pb2.LabelNamesRequest)
    async def label_names(message: types_pb2.LabelNamesRequest, _request: Request) -> types_pb2.LabelNamesResponse:
        return types_pb2.LabelNamesResponse(names=[*message.matchers, str(message.start)])

    @service.unary("LabelValues", types_pb2.LabelValuesRequest)
    def label_values(message: types_pb2.LabelValuesRequest, _request: Request) -> types_pb2.LabelValuesResponse:
        """Raises what the name says, to see each error come out in Connect's terms."""
        if message.name == "missing":
            raise NotFound("no such thing")
        if message.name == "expensive":
            raise TooExpensive("reads too much")
        if message.name == "large":
            raise PayloadTooLarge("body: too big")
        if message.name.startswith("code:"):
            raise ConnectError(message.name.removeprefix("code:"), "as asked")
        if message.name == "bug":
            raise RuntimeError("secret detail of a bug")
        return types_pb2.LabelValuesResponse(names=[message.name])

    @service.unary("GetProfileStats", types_pb2.GetProfileStatsRequest)
    def wrong_answer(_message: types_pb2.GetProfileStatsRequest, _request: Request) -> types_pb2.LabelNamesResponse:
        return types_pb2.LabelNamesResponse()  # a handler bug: not the method's output type

    app = FastAPI()
    app.state.settings = Settings(database_url="sqlite:///unused.db")
    app.include_router(service.router())
    return app


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = json.loads(response.content)
    assert set(body) == {"code", "message"} and body["code"] == code
    message: str = body["message"]
    return message


def test_binary_protobuf_in_and_out(client: TestClient) -> None:
    request = querier_pb2.ProfileTypesRequest(start=1000, end=1003)
    response = client.post(
        "/querier.v1.QuerierService/ProfileTypes", content=request.SerializeToString(), headers=PROTO
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/proto"
    answer = querier_pb2.ProfileTypesResponse.FromString(response.content)
    assert [t.ID for t in answer.profile_types] == ["t0:1000:1003", "t1:1000:1003", "t2:1000:1003"]


def test_json_in_and_out_with_int64_as_strings(client: TestClient) -> None:
    for body in ('{"start": "1000", "end": 1002}', '{"start": 1000, "end": "1002", "unknownField": 1}'):
        response = client.post("/querier.v1.QuerierService/ProfileTypes", content=body, headers=JSON)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"profileTypes": [{**_type(i), "ID": f"t{i}:1000:1002"} for i in range(2)]}


def _type(_i: int) -> dict[str, str]:
    # Fields at their default are written too: a browser client never meets undefined.
    return {"name": "x" * 10, "sampleType": "", "sampleUnit": "", "periodType": "", "periodUnit": ""}


def test_json_accepts_snake_case_and_camel_case_names(client: TestClient) -> None:
    path = "/querier.v1.QuerierService/LabelNames"
    for body in ('{"matchers": ["{}"], "start": "7"}', '{"matchers": ["{}"], "start": 7, "end": "9"}'):
        assert client.post(path, content=body, headers=JSON).json() == {"names": ["{}", "7"]}
    path = "/querier.v1.QuerierService/ProfileTypes"
    camel = client.post(path, content='{"start": 5, "end": 6}', headers=JSON).json()
    assert camel["profileTypes"][0]["ID"] == "t0:5:6"
    snake = querier_pb2.SelectSeriesRequest()
    json_format.Parse('{"profile_typeID": "a", "label_selector": "{}", "group_by": ["x"]}', snake)
    assert (snake.profile_typeID, snake.label_selector, list(snake.group_by)) == ("a", "{}", ["x"])


def test_an_async_handler_runs_in_the_event_loop(client: TestClient) -> None:
    request = types_pb2.LabelNamesRequest(matchers=['{service_name="a"}'], start=3)
    response = client.post("/querier.v1.QuerierService/LabelNames", content=request.SerializeToString(), headers=PROTO)
    assert types_pb2.LabelNamesResponse.FromString(response.content).names == ['{service_name="a"}', "3"]


def test_a_charset_parameter_and_a_missing_protocol_version_are_accepted(client: TestClient) -> None:
    response = client.post(
        "/querier.v1.QuerierService/ProfileTypes",
        content='{"start": 1, "end": 2}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200 and response.json()["profileTypes"][0]["ID"] == "t0:1:2"


def test_gzip_request_body(client: TestClient) -> None:
    request = querier_pb2.ProfileTypesRequest(start=10, end=11)
    response = client.post(
        "/querier.v1.QuerierService/ProfileTypes",
        content=gzip.compress(request.SerializeToString()),
        headers={**PROTO, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200
    assert querier_pb2.ProfileTypesResponse.FromString(response.content).profile_types[0].ID == "t0:10:11"


def test_gzip_response_when_accepted(client: TestClient) -> None:
    request = querier_pb2.ProfileTypesRequest(start=0, end=500).SerializeToString()
    path = "/querier.v1.QuerierService/ProfileTypes"
    zipped = client.post(path, content=request, headers={**PROTO, "Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.headers["content-type"] == "application/proto"
    assert zipped.num_bytes_downloaded < len(zipped.content) / 4  # httpx inflates it; the wire carried gzip
    plain = client.post(path, content=request, headers={**PROTO, "Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == zipped.content
    small = client.post(
        path,
        content=querier_pb2.ProfileTypesRequest().SerializeToString(),
        headers={**PROTO, "Accept-Encoding": "gzip"},
    )
    assert "content-encoding" not in small.headers and small.content == b""  # an empty message is zero bytes


@pytest.mark.parametrize(
    ("header", "accepted"),
    [("gzip", True), ("br, gzip;q=0.5", True), ("gzip;q=0", False), ("identity", False), ("*", True), ("", False)],
)
def test_accept_encoding(header: str, accepted: bool) -> None:
    assert accepts_gzip(header) is accepted


def test_body_limits(client: TestClient) -> None:
    path = "/querier.v1.QuerierService/LabelNames"
    big = types_pb2.LabelNamesRequest(matchers=["x" * (LIMIT + 1)]).SerializeToString()
    assert "65536" in _error(client.post(path, content=big, headers=PROTO), 429, "resource_exhausted")
    # A gzip bomb: small on the wire, past the decompressed budget; stopped while inflating.
    bomb = gzip.compress(types_pb2.LabelNamesRequest(matchers=["y" * (8 * LIMIT)]).SerializeToString())
    assert len(bomb) < LIMIT
    message = _error(
        client.post(path, content=bomb, headers={**PROTO, "Content-Encoding": "gzip"}), 429, "resource_exhausted"
    )
    assert "after gunzip" in message and str(4 * LIMIT) in message


def test_malformed_bodies_are_invalid_arguments(client: TestClient) -> None:
    path = "/querier.v1.QuerierService/LabelNames"
    assert "types.v1.LabelNamesRequest" in _error(
        client.post(path, content=b"\xff\xff\xff", headers=PROTO), 400, "invalid_argument"
    )
    assert "JSON" in _error(client.post(path, content=b"{nope", headers=JSON), 400, "invalid_argument")
    assert "JSON" in _error(client.post(path, content=b'{"start": "soon"}', headers=JSON), 400, "invalid_argument")
    gzipped = {**PROTO, "Content-Encoding": "gzip"}
    assert "not gzip" in _error(client.post(path, content=b"plain", headers=gzipped), 400, "invalid_argument")
    truncated = gzip.compress(b"\x0a\x01x" * 100)[:-12]
    assert "truncated" in _error(client.post(path, content=truncated, headers=gzipped), 400, "invalid_argument")
    br = {**PROTO, "Content-Encoding": "br"}
    assert "br" in _error(client.post(path, content=b"", headers=br), 501, "unimplemented")


def test_unsupported_content_type_and_protocol_version(client: TestClient) -> None:
    path = "/querier.v1.QuerierService/LabelNames"
    message = _error(
        client.post(path, content=b"", headers={"Content-Type": "application/octet-stream"}), 400, "invalid_argument"
    )
    assert "application/proto" in message and "application/json" in message
    assert "Connect-Protocol-Version" in _error(
        client.post(path, content=b"", headers={**PROTO, "Connect-Protocol-Version": "2"}), 400, "invalid_argument"
    )


def test_unserved_methods_and_wrong_http_methods(client: TestClient) -> None:
    message = _error(
        client.post("/querier.v1.QuerierService/SelectHeatmap", content=b"", headers=PROTO), 404, "unimplemented"
    )
    assert "querier.v1.QuerierService/SelectHeatmap" in message
    response = client.get("/querier.v1.QuerierService/LabelNames")
    assert _error(response, 405, "unimplemented") and response.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("missing", 404, "not_found"),
        ("expensive", 400, "invalid_argument"),
        ("large", 429, "resource_exhausted"),
        ("code:unauthenticated", 401, "unauthenticated"),
        ("code:permission_denied", 403, "permission_denied"),
        ("code:resource_exhausted", 429, "resource_exhausted"),
        ("code:internal", 500, "internal"),
        ("code:unimplemented", 501, "unimplemented"),
        ("code:unavailable", 503, "unavailable"),
        ("code:invalid_argument", 400, "invalid_argument"),
        ("code:not_found", 404, "not_found"),
    ],
)
def test_errors_carry_their_code_and_status(client: TestClient, name: str, status: int, code: str) -> None:
    body = types_pb2.LabelValuesRequest(name=name).SerializeToString()
    _error(client.post("/querier.v1.QuerierService/LabelValues", content=body, headers=PROTO), status, code)


def test_unavailable_says_when_to_retry(client: TestClient) -> None:
    body = types_pb2.LabelValuesRequest(name="code:unavailable").SerializeToString()
    response = client.post("/querier.v1.QuerierService/LabelValues", content=body, headers=PROTO)
    assert _error(response, 503, "unavailable") and response.headers["retry-after"] == "5"


def test_a_bug_is_internal_and_says_nothing_of_itself(client: TestClient) -> None:
    for name, path in (("bug", "LabelValues"), ("", "GetProfileStats")):
        body = types_pb2.LabelValuesRequest(name=name).SerializeToString() if name else b""
        message = _error(
            client.post(f"/querier.v1.QuerierService/{path}", content=body, headers=PROTO), 500, "internal"
        )
        assert "secret" not in message and "LabelNames" not in message


def test_registration_checks_the_method_and_its_message() -> None:
    service = ConnectService(SERVICE)
    with pytest.raises(ValueError, match="no method"):
        service.unary("Nope", querier_pb2.ProfileTypesRequest)
    with pytest.raises(TypeError, match=r"querier\.v1\.ProfileTypesRequest"):
        service.unary("ProfileTypes", querier_pb2.SeriesRequest)
    with pytest.raises(ValueError, match="unknown Connect code"):
        ConnectError("teapot", "no")
