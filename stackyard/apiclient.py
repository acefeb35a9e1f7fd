"""The HTTP client every ``stackyard`` command that talks to a running server shares.

``stackyard targets``, ``stackyard ingest`` and ``stackyard query`` go through
the server's API, so the server stays the one writer of its database: a
command run from another directory (or another machine) can no longer open a
SQLite file of its own by mistake and report success into it.

Two failures a person at a terminal must tell apart, each one line:

    ServerUnreachable   nothing answers at the URL ("is `stackyard serve` running?")
    ApiRefused          the server answered 4xx/5xx; ``message`` is its JSON ``error``
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from server.auth.tokens import bearer_header
from server.settings import Settings

#: 503 (the database is away for a moment) and lost connections are retried this often, then reported.
RETRIES = 3
RETRY_WAIT_S = 1.0


class ApiError(Exception):
    """A request to the server did not succeed; ``str()`` is the line to print, ``exit_code`` the status."""

    exit_code = 2


class ServerUnreachable(ApiError):
    exit_code = 3

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot reach the Stackyard server at {url} ({reason}); is `stackyard serve` running there? "
            "Name another with --server URL or STACKYARD_URL"
        )
        self.url = url


class ApiRefused(ApiError):
    def __init__(self, status: int, message: str) -> None:
        # A selector error points at the character on a second line; a terminal gets the sentence.
        self.line = message.strip().splitlines()[0] if message.strip() else f"HTTP {status}"
        super().__init__(f"{status}: {self.line}")
        self.status = status
        self.message = message


def server_url(given: str | None, settings: Settings | None = None) -> str:
    """``--server`` when given, else ``STACKYARD_URL``, else the local default."""
    url = given or (settings or Settings()).url
    return url.rstrip("/")


class ApiClient:
    """A thin wrapper of :class:`httpx.Client` that turns every failure into an :class:`ApiError`."""

    def __init__(self, url: str, token: Any = None, client: httpx.Client | None = None, timeout: float = 60) -> None:
        self.url = url
        self._own = client is None
        self._http = client or httpx.Client(base_url=url, timeout=timeout, headers=bearer_header(token))

    @classmethod
    def from_args(cls, given: str | None) -> ApiClient:
        settings = Settings()
        return cls(server_url(given, settings), settings.api_token)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own:
            self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = False,
    ) -> httpx.Response:
        """One call; with ``retry`` (safe only for idempotent calls), 503s and lost connections are retried."""
        attempts = RETRIES if retry else 1
        query: list[tuple[str, str | int | float | bool | None]] = []
        if params is not None:
            query.extend(params.items() if isinstance(params, Mapping) else params)
        for attempt in range(1, attempts + 1):
            try:
                response = self._http.request(method, path, params=query, json=json, content=content, headers=headers)
            except httpx.ConnectError as exc:  # nothing listens there: waiting will not change that
                raise ServerUnreachable(self.url, _reason(exc)) from None
            except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError) as exc:
                if attempt == attempts:
                    raise ServerUnreachable(self.url, f"connection lost: {type(exc).__name__}") from None
            except httpx.TimeoutException:
                if attempt == attempts:
                    raise ServerUnreachable(self.url, "no answer in time") from None
            except httpx.HTTPError as exc:
                raise ServerUnreachable(self.url, str(exc) or type(exc).__name__) from None
            else:
                if response.status_code == 503 and attempt < attempts:
                    pass  # the database is away for a moment: the server says so, the next try may succeed
                elif response.status_code >= 400:
                    raise ApiRefused(response.status_code, _message(response))
                else:
                    return response
            time.sleep(RETRY_WAIT_S * attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return self.request("GET", path, params=params, retry=True).json()


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return response.text.strip()[:500]


def _reason(exc: httpx.ConnectError) -> str:
    text = str(exc)
    if "refused" in text.lower():
        return "connection refused"
    if "name or service not known" in text.lower() or "nodename nor servname" in text.lower():
        return "host name not found"
    return text or "cannot connect"
