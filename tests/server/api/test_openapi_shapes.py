"""``/openapi.json`` describes every JSON answer, and real answers are exactly what it describes.

Every operation's JSON success response has a schema with properties (not a
bare object), and the answers of a session that pushes profiles and a dump,
queries them every way, and registers a target, a rule and a receiver validate
against those schemas with no key the schema leaves out.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from jsonschema import Draft202012Validator

from server.app import create_app
from server.settings import Settings
from server.store.repository import Store
from tests.support.tools import DATA

T0 = 1_790_000_000  # the time the profiles are pushed at, Unix seconds
#: Routes whose answers are files or text, not JSON, and the media type they declare instead.
NOT_JSON = {
    ("get", "/api/v1/pprof"): "application/octet-stream",
    ("get", "/api/v1/profiles/{profile_id}/pprof"): "application/octet-stream",
    ("get", "/api/v1/traces/{trace_id}"): "application/octet-stream",
    ("get", "/metrics"): "text/plain",
}
RULE = {"name": "many", "query": '{service="demo"}', "type": "goroutine", "expr": "value > 1", "for": "0s"}


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    store = Store.from_url(sqlite_url)
    settings = Settings(database_url=sqlite_url, retention_raw="36500d")
    with TestClient(create_app(settings, store)) as test_client:
        yield test_client
    store.close()


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(method, path, status, response) of every documented success response."""
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("2"):
                    yield method, path, status, response


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        *_, name = schema["$ref"].split("/")
        schema = document["components"]["schemas"][name]
    return schema


def test_every_json_answer_has_a_schema_with_properties(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    checked = 0
    for method, path, status, response in _operations(document):
        content = response.get("content", {})
        if status == "204":
            assert not content, (method, path)
            continue
        if (method, path) in NOT_JSON:
            (media_type,) = content
            assert media_type.startswith(NOT_JSON[(method, path)]), (method, path, media_type)
            continue
        assert list(content) == ["application/json"], (method, path, status)
        schema = _resolve(content["application/json"]["schema"], document)
        for alternative in schema.get("anyOf", [schema]):  # GET /api/v1/diff: a top table or a flame graph
            shape = _resolve(alternative, document)
            assert shape.get("type") == "object" and shape.get("properties"), (method, path, status, shape)
        checked += 1
    assert checked >= 35  # every JSON route of the API, not a handful that happened to be found


def _closed(document: dict[str, Any]) -> dict[str, Any]:
    """The document with every object schema closed: a key an answer has and its schema lacks is an error."""
    closed = copy.deepcopy(document)
    for schema in closed["components"]["schemas"].values():
        if "properties" in schema:
            schema.setdefault("additionalProperties", False)
    return closed


class Shapes:
    """Validates answers against the operation they came from, found by method, path template and status."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = _closed(document)
        self.routes = [
            (method, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path)
            for path, operations in document["paths"].items()
            for method in operations
        ]
        self.seen: set[tuple[str, str]] = set()

    def check(self, response: Response) -> Any:
        method, url_path = response.request.method.lower(), response.request.url.path
        (path,) = [p for m, pattern, p in self.routes if m == method and pattern.match(url_path)]
        declared = self.document["paths"][path][method]["responses"][str(response.status_code)]
        schema = {**declared["content"]["application/json"]["schema"], "components": self.document["components"]}
        body = response.json()
        errors = sorted(Draft202012Validator(schema).iter_errors(body), key=str)
        assert not errors, (method, url_path, [e.message for e in errors][:5])
        self.seen.add((method, path))
        return body


def _push(client: TestClient, path: Path, **params: str) -> Response:
    response: Response = client.post("/api/v1/ingest", params={"service": "demo", **params}, content=path.read_bytes())
    return response


@pytest.mark.dates
def test_real_answers_validate_against_the_document(client: TestClient) -> None:
    shapes = Shapes(client.get("/openapi.json").json())
    ok = shapes.check
    first = ok(_push(client, DATA / "cpu.pb.gz", time=str(T0), idempotency_key="one"))
    assert first["id"] and "replayed" not in first  # absent, not null, as before the schemas
    again = _push(client, DATA / "cpu.pb.gz", time=str(T0), idempotency_key="one")
    assert again.status_code == 200 and ok(again)["replayed"] is True
    ok(_push(client, DATA / "cpu2.pb.gz", time=str(T0 + 60), label="version=2"))
    ok(_push(client, DATA / "goroutine.pb.gz", time=str(T0)))
    dump = client.post(
        "/api/v1/goroutines/ingest",
        params={"service": "demo", "time": str(T0)},
        content=(DATA / "goroutine_debug2.txt").read_bytes(),
    )
    assert ok(dump)["goroutines"] > 0

    cpu = {"type": "cpu", "from": str(T0 - 60), "to": str(T0 + 120)}
    assert ok(client.get("/api/v1/top", params=cpu))["rows"]
    assert ok(client.get("/api/v1/top", params={**cpu, "aggregation": "avg"}))["total"] > 0
    assert ok(client.get("/api/v1/flamegraph", params={**cpu, "max_nodes": "5"}))["truncated"] is True
    base = {"base_query": '{version!="2"}', "query": '{version="2"}'}
    assert ok(client.get("/api/v1/diff", params={**cpu, **base}))["rows"]
    assert len(ok(client.get("/api/v1/diff", params={**cpu, **base, "format": "flamegraph"}))["total"]) == 2
    assert ok(client.get("/api/v1/timeseries", params={**cpu, "group_by": "version"}))["series"]
    history = client.get("/api/v1/functions/runtime.main/history", params={**cpu, "step": "60s"})
    assert ok(history)["points"]
    profiles = ok(client.get("/api/v1/profiles", params=cpu))["profiles"]
    one = profiles[0]["id"]
    assert ok(client.get(f"/api/v1/profiles/{one}/top"))["rows"]
    assert ok(client.get(f"/api/v1/profiles/{one}/flamegraph"))["levels"]
    assert ok(client.get("/api/v1/series"))["series"]
    assert ok(client.get("/api/v1/labels", params=cpu))["names"]
    assert ok(client.get("/api/v1/labels/version/values", params=cpu))["values"] == ["2"]

    groups = ok(client.get("/api/v1/goroutines/groups", params={"at": str(T0 + 1)}))
    stack = groups["instances"][0]["groups"][0]["stack_id"]
    ok(client.get(f"/api/v1/goroutines/stacks/{stack}/trend", params={"from": str(T0 - 1), "to": str(T0 + 1)}))
    ok(client.get("/api/v1/goroutines/leaks", params={"from": str(T0 - 60), "to": str(T0 + 60)}))

    target = ok(client.post("/api/v1/targets", json={"url": "http://127.0.0.1:6060", "service": "checkout"}))
    ok(client.patch(f"/api/v1/targets/{target['id']}", json={"paused": True}))
    ok(client.get(f"/api/v1/targets/{target['id']}"))
    assert ok(client.get("/api/v1/targets"))["targets"]
    assert ok(client.get("/api/v1/profile-kinds"))["kinds"]
    assert ok(client.get("/api/v1/fleet"))["instances"]

    ok(client.post("/api/v1/receivers", json={"name": "oncall", "webhook_url": "http://127.0.0.1:9/hook"}))
    assert ok(client.get("/api/v1/receivers"))["receivers"]
    assert ok(client.post("/api/v1/rules", json=RULE))["for"] == "0s"
    ok(client.put("/api/v1/rules/many", json={**RULE, "expr": "value > 2"}))
    ok(client.get("/api/v1/rules/many"))
    assert ok(client.get("/api/v1/rules"))["rules"][0]["alerts"] == {"pending": 0, "firing": 0, "resolved": 0}
    ok(client.get("/api/v1/alerts"))
    assert ok(client.get("/healthz"))["status"] == "ok"
    assert ok(client.get("/readyz")) == {"status": "ok"}  # no "error" key when ready

    assert len(shapes.seen) >= 30, sorted(shapes.seen)
