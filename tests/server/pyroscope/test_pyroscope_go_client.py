"""A Go Connect client (examples/grafanaclient) against a live server: the calls Grafana's backend makes.

The client is standard-library Go 1.19 with hand-written protobuf, sending
what connect-go sends by default (binary protobuf, Connect-Protocol-Version 1,
Accept-Encoding gzip, a Bearer token). Its answers must equal what our
generated Python stubs read from the same server.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import httpx
import pytest

from server.auth.tokens import Scope, TokenEntry, digest
from server.pyroscope.proto.querier.v1 import querier_pb2
from tests.support.browser import LiveServer, serving
from tests.support.godemo import build
from tests.support.tools import DATA

T0 = 1_780_000_000
CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
READ_TOKEN = "read-token-" + "z" * 24

pytestmark = [pytest.mark.go, pytest.mark.dates]  # dates: CI runs it again with the clock 400 days ahead


def _run(binary: str, server: LiveServer, token: str, *args: str) -> tuple[int, Any]:
    result = subprocess.run(
        [binary, "-url", server.url, "-token", token, *args], capture_output=True, text=True, timeout=120, check=False
    )
    return result.returncode, json.loads(result.stdout) if result.stdout.strip() else result.stderr


def test_go_connect_client_reads_what_the_stubs_read(database_url: str) -> None:
    binary = str(build("grafanaclient"))
    tokens = [
        TokenEntry(name="grafana", scopes=[Scope.READ], sha256=digest(READ_TOKEN)),
        TokenEntry(name="pusher", scopes=[Scope.INGEST], sha256=digest("ingest-token-" + "z" * 24)),
    ]
    with serving(database_url, auth_tokens=tokens) as server:
        headers = {"Authorization": "Bearer ingest-token-" + "z" * 24}
        for offset, (name, instance) in enumerate([("cpu", "a"), ("cpu2", "b"), ("cpu_slow", "c")]):
            response = httpx.post(
                f"{server.url}/api/v1/ingest",
                params={"service": "api", "type": "cpu", "time": str(T0 + offset), "label": f"instance={instance}"},
                content=(DATA / f"{name}.pb.gz").read_bytes(),
                headers=headers,
                timeout=30,
            )
            assert response.status_code == 201, response.text
        start, end = T0 * 1000, (T0 + 60) * 1000
        selector = '{service_name="api", instance=~"a|b"}'
        code, answer = _run(binary, server, READ_TOKEN, "-start", str(start), "-end", str(end), "-selector", selector)
        assert code == 0, answer
        assert answer["saveAndTest"] == []
        assert answer["profileTypes"] == [CPU, "process_cpu:samples:count:cpu:nanoseconds"]
        assert "service_name" in answer["labelNames"] and "instance" in answer["labelNames"]
        assert answer["contentType"] == "application/proto" and answer["contentEncoding"] == "gzip"

        request = querier_pb2.SelectMergeStacktracesRequest(
            profile_typeID=CPU, label_selector=selector, start=start, end=end, max_nodes=16384
        )
        response = httpx.post(
            f"{server.url}/querier.v1.QuerierService/SelectMergeStacktraces",
            content=request.SerializeToString(),
            headers={"Content-Type": "application/proto", "Authorization": f"Bearer {READ_TOKEN}"},
            timeout=30,
        )
        expected = querier_pb2.SelectMergeStacktracesResponse.FromString(response.content).flamegraph
        graph = answer["flamegraph"]
        assert graph["names"] == list(expected.names) and graph["names"][0] == "total"
        assert graph["levels"] == [list(level.values) for level in expected.levels]
        assert (graph["total"], graph["maxSelf"]) == (expected.total, expected.max_self) and graph["total"] > 0

        code, refused = _run(binary, server, "not-a-token", "-start", str(start), "-end", str(end))
        assert code == 1
        assert refused == {"error": {"status": 401, "code": "unauthenticated", "message": "authentication required"}}
