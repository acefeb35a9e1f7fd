"""Connect's unary protocol over HTTP/1.1: how Pyroscope's clients call a service.

A call is ``POST /<package>.<Service>/<Method>`` whose body is one protobuf
message, either binary (``Content-Type: application/proto``, what Grafana's
backend and Alloy send) or its JSON form (``application/json``, what the
Profiles Drilldown app sends through Grafana's proxy), with no gRPC framing.
The answer uses the request's encoding under the same content type: Grafana
refuses ``application/octet-stream``.

Bodies are bounded twice: as sent (``max_body_bytes``, refused at the first
byte past it) and after ``Content-Encoding: gzip`` is undone (the same budget
as a pprof push, ``max_decompressed_bytes``, enforced while inflating). The
answer is gzip-compressed when the client sends ``Accept-Encoding: gzip``.

Errors are Connect's JSON, ``{"code": "...", "message": "..."}``, with the
HTTP status its code maps to. Stackyard's own errors keep their meaning::

    ConnectError                    raised by handlers, code as given
    StackyardError by status
        400, 422                    invalid_argument  400
        401                         unauthenticated   401
        403                         permission_denied 403
        404                         not_found         404
        409                         already_exists    409
        413, 429                    resource_exhausted 429 (a size or rate budget; connect-go answers a
                                                       message past its read limit the same way)
        507                         resource_exhausted 429 (the store's stack tree is full: gRPC's code for
                                                       "out of space")
        503                         unavailable       503
    ProfileError                    invalid_argument, or resource_exhausted past the decompressed budget
    database outage                 unavailable       503
    anything else                   internal          500 (logged; the message says no more)

Use: build a :class:`ConnectService` from a service descriptor of the
generated modules, register handlers with :meth:`ConnectService.unary`, and
include :meth:`ConnectService.router` in the app. A handler takes the parsed
request message and the Starlette request (whose app's store and services
``server.api.deps``'s ``*_of`` functions give) and returns the response
message; a plain function runs in a worker thread (queries and stores block),
a coroutine function in the event loop.
"""

from __future__ import annotations

import gzip
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response
from google.protobuf import json_format
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from server.api.deps import settings_of
from server.api.errors import RETRY_AFTER_S
from server.errors import StackyardError
from server.pprof.decode import GZIP_MAGIC, decompress
from server.pprof.errors import DecompressError, ProfileError, ProfileTooLargeError
from server.pyroscope.budget import Malformed, TooManyElements, count_elements
from server.settings import Settings
from server.store.availability import describe, is_unavailable

log = logging.getLogger(__name__)

#: Connect's error codes and the HTTP status each travels with.
CODES: dict[str, int] = {
    "canceled": 499,
    "unknown": 500,
    "invalid_argument": 400,
    "deadline_exceeded": 504,
    "not_found": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "resource_exhausted": 429,
    "failed_precondition": 400,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "data_loss": 500,
    "unauthenticated": 401,
}
_CODE_OF_STATUS = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    409: "already_exists",
    413: "resource_exhausted",
    422: "invalid_argument",
    429: "resource_exhausted",
    501: "unimplemented",
    507: "resource_exhausted",
    503: "unavailable",
}

PROTO = "application/proto"
JSON = "application/json"
M = TypeVar("M", bound=Message)
#: A handler: the parsed request and the HTTP request (for ``server.api.deps.*_of``) in, the response message out.
Handler = Callable[[M, Request], Message] | Callable[[M, Request], Awaitable[Message]]

#: Answers smaller than this go uncompressed even when gzip is accepted: gzip would only add bytes.
GZIP_MIN_BYTES = 512


class ConnectError(Exception):
    """A refusal in Connect's terms: ``code`` is one of :data:`CODES`, ``message`` says what was wrong."""

    def __init__(self, code: str, message: str) -> None:
        if code not in CODES:
            raise ValueError(f"unknown Connect code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return CODES[self.code]


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """Largest request body as sent, and after gunzip; ``elements``: most submessages (and JSON values) it may hold.

    The byte limits bound what is read; ``elements`` bounds what the parse would build from it
    (:mod:`server.pyroscope.budget`), for a method whose requests may be large.
    """

    body_bytes: int
    decompressed_bytes: int
    elements: int | None = None

    @classmethod
    def of(cls, settings: Settings) -> BodyLimits:
        return cls(settings.max_body_bytes, settings.max_decompressed_bytes)


def error_response(error: ConnectError) -> Response:
    """Connect's JSON error body, with the status that goes with its code."""
    body = json.dumps({"code": error.code, "message": error.message}).encode()
    headers = {"Cache-Control": "no-store"}
    if error.code == "unavailable":
        headers["Retry-After"] = str(RETRY_AFTER_S)  # as the rest of the API says it during a database outage
    return Response(body, status_code=error.status, media_type=JSON, headers=headers)


def as_connect_error(exc: Exception, procedure: str) -> ConnectError:
    """Stackyard's exceptions in Connect's terms (see the module docstring); unknown ones are logged."""
    if isinstance(exc, ConnectError):
        return exc
    if isinstance(exc, StackyardError):
        if exc.status_code == 503:
            return ConnectError("unavailable", exc.message)
        return ConnectError(_CODE_OF_STATUS.get(exc.status_code, "invalid_argument"), exc.message)
    if isinstance(exc, ProfileTooLargeError):
        return ConnectError("resource_exhausted", str(exc))
    if isinstance(exc, ProfileError):
        return ConnectError("invalid_argument", str(exc))
    if isinstance(exc, (DBAPIError, PoolTimeout)) and is_unavailable(exc):
        reason = describe(exc)
        log.error("database unavailable", extra={"procedure": procedure, "error": reason})
        return ConnectError("unavailable", f"database unavailable: {reason}; try again shortly")
    log.error("connect call failed", extra={"procedure": procedure}, exc_info=exc)
    return ConnectError("internal", "internal error; see the server log")


def _codec(content_type: str | None) -> str:
    """``proto`` or ``json`` from the request's Content-Type (parameters such as charset are ignored)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == PROTO:
        return "proto"
    if media == JSON:
        return "json"
    shown = media or "none"
    raise ConnectError("invalid_argument", f"Content-Type: {shown} is not served; send {PROTO} or {JSON}")


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether ``Accept-Encoding`` lists gzip (or ``*``) with a non-zero quality."""
    for item in (accept_encoding or "").split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() not in ("gzip", "*"):
            continue
        quality = params.strip().lower()
        if quality.startswith("q="):
            try:
                if float(quality[2:]) <= 0:
                    continue
            except ValueError:
                continue
        return True
    return False


async def read_body(request: Request, limits: BodyLimits) -> bytes:
    """The body as sent, refused at the first byte past the limit (inflating it is :func:`inflate`'s job)."""
    limit = limits.body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ConnectError("resource_exhausted", f"body: {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ConnectError("resource_exhausted", f"body: more than {limit} bytes (the limit)")
        chunks.append(chunk)
    return b"".join(chunks)


def inflate(body: bytes, content_encoding: str | None, limits: BodyLimits) -> bytes:
    """The body gunzipped within its own budget when its ``Content-Encoding`` says gzip."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise ConnectError("unimplemented", f"Content-Encoding: {encoding} is not served; send gzip or identity")
    return gunzip(body, limits.decompressed_bytes)


def decode_request(
    message_type: type[M], body: bytes, content_encoding: str | None, codec: str, limits: BodyLimits
) -> M:
    """Inflate, count and parse a request body.

    Run in a worker thread: tens of megabytes of gzip, or a walk over a
    hundred thousand submessages, would otherwise hold the event loop and
    every other request (``/healthz`` included) behind it.
    """
    raw = inflate(body, content_encoding, limits)
    if limits.elements is not None:
        check_elements(message_type, raw, codec, limits.elements)
    return parse(message_type, raw, codec)


def gunzip(data: bytes, limit: int) -> bytes:
    """Inflate a gzip body, stopping at ``limit`` bytes of output (a gzip bomb costs no more than that)."""
    if not data:
        return data
    if not data.startswith(GZIP_MAGIC):
        raise ConnectError("invalid_argument", "body: Content-Encoding is gzip but the body is not gzip data")
    try:
        return decompress(data, limit)
    except ProfileTooLargeError:
        raise ConnectError(
            "resource_exhausted", f"body: more than {limit} bytes after gunzip (the limit, max_decompressed_bytes)"
        ) from None
    except DecompressError as exc:
        detail = str(exc).removeprefix("decompressing profile: ")
        raise ConnectError("invalid_argument", f"body: {detail}") from None


def parse(message_type: type[M], body: bytes, codec: str) -> M:
    message = message_type()
    if codec == "proto":
        try:
            message.ParseFromString(body)
        except DecodeError as exc:
            raise ConnectError(
                "invalid_argument", f"body: not a binary {message.DESCRIPTOR.full_name} ({exc})"
            ) from None
        return message
    try:
        text = body.decode("utf-8") if body.strip() else "{}"
        # Fields a newer client knows and this server does not are ignored, as binary protobuf ignores them.
        json_format.Parse(text, message, ignore_unknown_fields=True)
    except (UnicodeDecodeError, json_format.ParseError) as exc:
        raise ConnectError("invalid_argument", f"body: not JSON of {message.DESCRIPTOR.full_name} ({exc})") from None
    return message


def check_elements(message_type: type[Message], body: bytes, codec: str, budget: int) -> None:
    """Refuse a body that would parse into more than ``budget`` objects, before parsing it.

    Binary: its submessages, counted on the wire. JSON: an upper bound on its values, from the commas
    and brackets that separate and open them (counted in C, by ``bytes.count``). The refusal is
    ``invalid_argument``, not ``resource_exhausted``, so a client does not retry it as it is.
    """
    name = message_type.DESCRIPTOR.full_name
    if codec == "json":
        values = body.count(b",") + body.count(b"{") + body.count(b"[") + 1
        if values > budget:
            raise ConnectError(
                "invalid_argument", f"body: {name} holds more than {budget} values; send fewer series per request"
            )
        return
    try:
        count_elements(message_type.DESCRIPTOR, body, budget)
    except TooManyElements:
        raise ConnectError(
            "invalid_argument", f"body: {name} holds more than {budget} entries; send fewer series per request"
        ) from None
    except Malformed as exc:
        raise ConnectError("invalid_argument", f"body: not a binary {name} ({exc})") from None


def serialize(message: Message, codec: str) -> bytes:
    if codec == "proto":
        return message.SerializeToString()
    # Connect's JSON is protojson: lowerCamelCase names, int64 as strings. Fields at their defaults are
    # written too, so a browser client reading ``levels`` or ``dataIngested`` never meets undefined.
    text = json_format.MessageToJson(message, indent=None, always_print_fields_with_no_presence=True)
    return text.encode()


@dataclass(frozen=True, slots=True)
class _Procedure:
    method: MethodDescriptor
    request_type: type[Message]
    handler: Callable[[Any, Request], Any]
    limits: Callable[[Settings], BodyLimits]


class ConnectService:
    """The unary methods of one service, mounted at ``/<package>.<Service>/<Method>``.

    Methods of the service without a handler, and any other name under the
    service's path, answer ``unimplemented`` with status 404 (what a
    connect-go server answers for a procedure it does not have).
    """

    def __init__(self, descriptor: ServiceDescriptor, limits: Callable[[Settings], BodyLimits] = BodyLimits.of) -> None:
        self.descriptor = descriptor
        self.limits = limits
        self._procedures: dict[str, _Procedure] = {}

    def unary(
        self, name: str, request_type: type[M], limits: Callable[[Settings], BodyLimits] | None = None
    ) -> Callable[[Handler[M]], Handler[M]]:
        """Register the handler of method ``name``; ``request_type`` must be the method's input message."""
        method = self.descriptor.methods_by_name.get(name)
        if method is None:
            raise ValueError(f"{self.descriptor.full_name} has no method {name!r}")
        if request_type.DESCRIPTOR.full_name != method.input_type.full_name:
            raise TypeError(f"{name} takes {method.input_type.full_name}, not {request_type.DESCRIPTOR.full_name}")

        def register(handler: Handler[M]) -> Handler[M]:
            self._procedures[name] = _Procedure(method, request_type, handler, limits or self.limits)
            return handler

        return register

    def path(self, name: str) -> str:
        return f"/{self.descriptor.full_name}/{name}"

    def router(self) -> APIRouter:
        router = APIRouter(tags=[self.descriptor.full_name])
        for name, procedure in self._procedures.items():
            router.add_api_route(self.path(name), self._endpoint(procedure), methods=["POST"], include_in_schema=False)
        router.add_api_route(
            f"/{self.descriptor.full_name}/{{method}}",
            self._unserved,
            methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
            include_in_schema=False,
        )
        return router

    async def _unserved(self, request: Request, method: str) -> Response:
        procedure = f"{self.descriptor.full_name}/{method}"
        if method in self._procedures:
            error = ConnectError("unimplemented", f"{procedure}: only POST is served")
            response = error_response(error)
            response.status_code = 405
            response.headers["Allow"] = "POST"
            return response
        # 404, as a connect-go server's mux answers a procedure it does not have; clients read "unimplemented".
        response = error_response(ConnectError("unimplemented", f"{procedure} is not served by Stackyard"))
        response.status_code = 404
        return response

    def _endpoint(self, procedure: _Procedure) -> Callable[[Request], Awaitable[Response]]:
        name = f"{self.descriptor.full_name}/{procedure.method.name}"
        is_async = inspect.iscoroutinefunction(procedure.handler)

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            codec = "proto"
            try:
                codec = _codec(request.headers.get("content-type"))
                version = request.headers.get("connect-protocol-version")
                if version is not None and version.strip() != "1":
                    raise ConnectError("invalid_argument", f"Connect-Protocol-Version: {version} is not 1")
                limits = procedure.limits(settings_of(request))
                body = await read_body(request, limits)
                encoding = request.headers.get("content-encoding")
                message = await to_thread.run_sync(
                    decode_request, procedure.request_type, body, encoding, codec, limits
                )
                if is_async:
                    answer = await procedure.handler(message, request)
                else:
                    answer = await to_thread.run_sync(procedure.handler, message, request)
                if answer.DESCRIPTOR.full_name != procedure.method.output_type.full_name:
                    raise TypeError(f"{name} answered {answer.DESCRIPTOR.full_name}")
                payload = serialize(answer, codec)
            except Exception as exc:
                error = as_connect_error(exc, name)
                log.info(
                    "connect call refused",
                    extra={"procedure": name, "code": error.code, "error": error.message, "encoding": codec},
                )
                return error_response(error)
            headers = {}
            if len(payload) >= GZIP_MIN_BYTES and accepts_gzip(request.headers.get("accept-encoding")):
                # Level 1: a third of level 6's time for most of its gain (390 KB to 111 KB for a large flame graph).
                payload = gzip.compress(payload, compresslevel=1, mtime=0)
                headers["Content-Encoding"] = "gzip"
            log.debug(
                "connect call",
                extra={
                    "procedure": name,
                    "encoding": codec,
                    "bytes": len(payload),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            return Response(payload, media_type=PROTO if codec == "proto" else JSON, headers=headers)

        return endpoint
