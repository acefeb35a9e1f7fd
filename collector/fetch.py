"""HTTP scraping of pprof endpoints: bounded concurrency, bounded size, one sentence per failure.

Each target (``host:port`` and TLS settings) gets its own small httpx client:
one pool shared by a fleet makes every request scan thousands of
connections (bench/scrape.py measured 72 % of the collector's time there at
1,000 targets). A per-host semaphore keeps a single target from being
hammered; a global one caps the short snapshot requests in flight. CPU and
delta requests spend their time waiting for the target to sample, so they
do not count against the global cap. Bodies are streamed and cut off at the
size limit, so a target cannot make the collector buffer gigabytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from collector.errors import (
    ConnectError,
    HTTPStatusError,
    ResponseTooLarge,
    ScrapeError,
    ScrapeTimeout,
    TargetRefused,
)
from server.network.guard import AddressRefused, GuardedTransport
from server.network.policy import NetworkPolicy
from server.scrape.spec import Auth, TargetSpec

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
USER_AGENT = "stackyard-collector/0.1"


@dataclass(frozen=True, slots=True)
class FetchLimits:
    max_in_flight: int = 64
    max_per_host: int = 9  # seven kinds, plus two delta requests overlapping the next ones
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_redirects: int = 3


class Fetcher:
    """``transport`` replaces the guarded network path (tests of protocol handling); ``policy`` guards it."""

    def __init__(
        self,
        limits: FetchLimits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: NetworkPolicy | None = None,
    ) -> None:
        self.limits = limits or FetchLimits()
        self._transport = transport
        self._policy = policy or NetworkPolicy()
        self._clients: dict[tuple[str, tuple[str | None, str | None, str | None, bool]], httpx.AsyncClient] = {}
        self._global = asyncio.Semaphore(self.limits.max_in_flight)
        self._default_tls = ssl.create_default_context()
        self._per_host: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(self.limits.max_per_host)
        )

    def _client(self, host: str, auth: Auth | None) -> httpx.AsyncClient:
        key = (host, auth.tls_key() if auth else (None, None, None, False))
        client = self._clients.get(key)
        if client is None:
            # One default context for every client: building one loads the CA store (about 1 MB
            # and a few ms each), which for 1,000 targets was a gigabyte and a slow start.
            verify: ssl.SSLContext = self._default_tls
            if auth is not None and (auth.ca_file or auth.cert_file or auth.insecure_skip_verify):
                context = ssl.create_default_context(cafile=auth.ca_file)
                if auth.cert_file:
                    context.load_cert_chain(auth.cert_file, auth.key_file)
                if auth.insecure_skip_verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                verify = context
            limits = httpx.Limits(
                max_connections=self.limits.max_per_host, max_keepalive_connections=self.limits.max_per_host
            )
            client = httpx.AsyncClient(
                transport=self._transport or GuardedTransport(self._policy, verify, limits),
                verify=verify,
                # Redirects are followed by ``_get``, which refuses those to another host.
                follow_redirects=False,
                trust_env=False,
                # No httpx timeouts: ``get`` bounds the whole request (a CPU profile legitimately
                # keeps the connection silent for its whole duration).
                timeout=None,
                headers={"User-Agent": USER_AGENT},
                limits=limits,
            )
            self._clients[key] = client
        return client

    async def get(
        self,
        target: TargetSpec,
        url: str,
        timeout_s: float,
        timed: bool = False,
        on_start: Callable[[], None] | None = None,
    ) -> bytes:
        """GET ``url`` within ``timeout_s`` (connect, wait and body together).

        ``timed`` requests (CPU, deltas) skip the global cap; ``on_start`` runs
        once the limits let the request go, which is when its lag is real.
        """
        host = target.instance
        headers: dict[str, str] = {}
        auth: httpx.BasicAuth | None = None
        if target.auth is not None:
            if target.auth.bearer_token:
                headers["Authorization"] = f"Bearer {target.auth.bearer_token}"
            elif target.auth.username is not None:
                auth = httpx.BasicAuth(target.auth.username, target.auth.password or "")
        # The host's own limit first: a request waiting for a busy target must not hold a global slot.
        async with self._per_host[host], contextlib.nullcontext() if timed else self._global:
            if on_start is not None:
                on_start()
            try:
                return await asyncio.wait_for(self._get(target, url, headers, auth), timeout_s)
            except TimeoutError:
                timeout = ScrapeTimeout(f"timeout after {timeout_s:g}s")
                timeout.url = url
                raise timeout from None
            except ScrapeError as exc:
                exc.url = url
                raise

    async def _get(self, target: TargetSpec, url: str, headers: dict[str, str], auth: httpx.BasicAuth | None) -> bytes:
        client = self._client(target.instance, target.auth)
        limit = target.max_response_bytes or self.limits.max_response_bytes
        current = httpx.URL(url)
        try:
            for hop in range(self.limits.max_redirects + 1):
                async with client.stream("GET", current, headers=headers, auth=auth) as response:
                    if response.is_redirect and "location" in response.headers:
                        current = _next_hop(current, response.headers["location"], hop, self.limits.max_redirects)
                        continue
                    return await _read_body(response, limit)
            raise AssertionError("unreachable: the last hop either returns or raises")
        except ScrapeError:
            raise
        except AddressRefused as exc:
            raise TargetRefused(str(exc)) from None
        except httpx.ConnectError as exc:
            raise ConnectError(_connect_sentence(exc)) from None
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError) as exc:
            raise ConnectError(f"connection broken while reading the response ({type(exc).__name__})") from None
        except httpx.TimeoutException:
            raise ScrapeTimeout("timeout") from None
        except httpx.HTTPError as exc:
            raise ScrapeError(f"{type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def _next_hop(current: httpx.URL, location: str, hop: int, max_redirects: int) -> httpx.URL:
    """Where a redirect leads, if it may be followed: same host, http or https, within the hop limit.

    A redirect to another host would let any target send the scraper
    anywhere (the network policy still guards every connection, but the
    target should not choose where its scrape goes).
    """
    try:
        target = current.join(location)
    except httpx.InvalidURL:
        raise TargetRefused(f"refused: redirect to an invalid URL {location[:200]!r}") from None
    if target.scheme not in ("http", "https"):
        raise TargetRefused(f"refused: redirect to scheme {target.scheme!r} not followed (only http and https)")
    if target.host.lower() != current.host.lower():
        raise TargetRefused(f"refused: redirect to another host ({target.host}) not followed")
    if hop >= max_redirects:
        raise TargetRefused(f"refused: more than {max_redirects} redirects")
    return target


async def _read_body(response: httpx.Response, limit: int) -> bytes:
    """The body of a 200 within ``limit`` bytes; anything else becomes the sentence a targets page shows."""
    if response.status_code != 200:
        body = (await _read_some(response, 512)).decode("utf-8", "replace").strip().splitlines()
        detail = f": {body[0][:200]}" if body else ""
        raise HTTPStatusError(response.status_code, f"HTTP {response.status_code}{detail}")
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ResponseTooLarge(f"response larger than {limit} bytes ({declared} declared)")
    chunks: list[bytes] = []
    size = 0
    # Raw bytes: Go serves gzip as the body itself, and the decoder bounds decompression.
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > limit:
            raise ResponseTooLarge(f"response larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_some(response: httpx.Response, limit: int) -> bytes:
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= limit:
            break
    return data[:limit]


def _connect_sentence(exc: httpx.ConnectError) -> str:
    """Name the cause the way an operator would, from the OS error under httpx's wrapper."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return "host name not found"
        if isinstance(cause, OSError) and cause.errno in _ERRNO_SENTENCES:
            return _ERRNO_SENTENCES[cause.errno]
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed ({cause.reason or cause})"
        cause = cause.__cause__ or cause.__context__
    return f"cannot connect ({exc})"


_ERRNO_SENTENCES = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "connect timed out",
}
