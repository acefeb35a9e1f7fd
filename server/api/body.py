"""Request bodies read within a byte limit: shared by every route that takes an upload.

Pushes (``/api/v1/ingest``, goroutine dumps, the pyroscope-go SDK's ``/ingest``) all read their body
here, so each refuses at the first byte past the limit rather than after buffering it all.
"""

from __future__ import annotations

from fastapi import Request

from server.errors import PayloadTooLarge


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing at the first byte past ``limit`` rather than after buffering it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body: {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body: more than {limit} bytes (the limit)")
        chunks.append(chunk)
    return b"".join(chunks)
