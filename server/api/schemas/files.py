"""Answers that are not JSON, as ``/openapi.json`` describes them (``responses=`` of their routes)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

PPROF_FILE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "A gzip pprof file."}
}
TRACE_FILE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "A Go execution trace, for go tool trace."}
}
METRICS_TEXT: dict[int | str, dict[str, Any]] = {
    200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus' text exposition format."}
}
