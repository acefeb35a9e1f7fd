"""The SDK's ``multipart/form-data`` upload, parsed while it streams in, within the body limit.

python-multipart (the parser Starlette uses) is fed the request chunk by
chunk; parts are kept only if they are ones Stackyard reads (``profile``,
``prev_profile``, ``sample_type_config``), each within its own limit, and the
whole body within ``max_body_bytes``, refused at the first byte past it. So a
hostile upload costs at most the limit in memory, and a parser error names
the problem (a missing boundary, a truncated body, a part given twice).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from server.errors import InvalidParameter, PayloadTooLarge

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

#: Parts read, and the most bytes each may hold beside the body limit (None: only the body limit).
PARTS: dict[str, int | None] = {"profile": None, "prev_profile": None, "sample_type_config": 64 * 1024}
MULTIPART = "multipart/form-data"


def is_multipart(content_type: str | None) -> bool:
    media, _ = parse_options_header(content_type or "")
    return media.decode("latin-1").strip().lower() == MULTIPART


@dataclass
class _State:
    parts: dict[str, bytearray] = field(default_factory=dict)
    header_name: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    disposition: bytes = b""
    current: str | None = None
    finished: bool = False
    problem: str | None = None


async def read_form(
    chunks: AsyncIterator[bytes], content_type: str, body_limit: int, declared: str | None = None
) -> dict[str, bytes]:
    """The named parts of the form; unknown parts are read past and dropped.

    ``declared``: the request's Content-Length, refused before reading when it is past the limit.
    """
    if declared and declared.isdigit() and int(declared) > body_limit:
        raise PayloadTooLarge(f"body: {declared} bytes exceeds the limit of {body_limit} bytes")
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidParameter("Content-Type", "multipart/form-data without a boundary")
    state = _State()
    try:
        parser = MultipartParser(boundary, _callbacks(state))
    except FormParserError as exc:
        raise InvalidParameter("body", f"malformed multipart/form-data ({exc})") from None
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > body_limit:
            raise PayloadTooLarge(f"body: more than {body_limit} bytes (the limit)")
        try:
            parser.write(chunk)
        except FormParserError as exc:
            raise InvalidParameter("body", f"malformed multipart/form-data ({exc})") from None
        if state.problem is not None:
            raise InvalidParameter("body", state.problem)
    if not state.finished:
        raise InvalidParameter("body", "truncated multipart/form-data (no closing boundary)")
    return {name: bytes(data) for name, data in state.parts.items()}


def _callbacks(state: _State) -> MultipartCallbacks:
    def on_part_begin() -> None:
        state.disposition = b""
        state.current = None

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state.header_name += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state.header_value += data[start:end]

    def on_header_end() -> None:
        if bytes(state.header_name).strip().lower() == b"content-disposition":
            state.disposition = bytes(state.header_value)
        state.header_name.clear()
        state.header_value.clear()

    def on_headers_finished() -> None:
        _, options = parse_options_header(state.disposition)
        name = options.get(b"name", b"").decode("latin-1")
        if name not in PARTS:
            return
        if name in state.parts:
            state.problem = f"the form has two {name!r} parts"
            return
        state.current = name
        state.parts[name] = bytearray()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state.current is None:
            return
        part = state.parts[state.current]
        part += data[start:end]
        limit = PARTS[state.current]
        if limit is not None and len(part) > limit:
            state.problem = f"the {state.current!r} part is larger than {limit} bytes"
            state.current = None

    def on_end() -> None:
        state.finished = True

    return {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data,
        "on_end": on_end,
    }
