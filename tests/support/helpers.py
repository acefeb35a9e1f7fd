"""Small helpers shared by API tests: pushing files and asking for top tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

UNITS = {
    "cpu": "nanoseconds",
    "samples": "count",
    "inuse_space": "bytes",
    "alloc_space": "bytes",
    "inuse_objects": "count",
    "alloc_objects": "count",
    "delay": "nanoseconds",
    "contentions": "count",
    "goroutine": "count",
    "threadcreate": "count",
}


def push(client: TestClient, path: Path, service: str = "demo", **params: str) -> dict[str, Any]:
    response = client.post("/api/v1/ingest", params={"service": service, **params}, content=path.read_bytes())
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def top(client: TestClient, **params: str) -> dict[str, Any]:
    query = {"from": "0", "to": "now+1h", **params}
    response = client.get("/api/v1/top", params=query)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
