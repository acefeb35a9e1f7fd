"""Connect only where the network policy allows: the check sits where the address is chosen.

httpx lets the operating system resolve a host name when it connects, which
is too late to look at the address and too early to see it. So every client
that connects to a URL a user gave (the collector's scrapes, alert webhooks
and Alertmanager) gets a network backend that resolves the name itself, drops
every address the policy refuses (as what it reaches: see
:func:`server.network.policy.reached`), and connects to the very address it
checked (TLS still verifies the certificate against the name). A name that
resolves to the metadata service, or a DNS answer that changes between
registration and connection, therefore reaches nothing it should not.
Proxies from the environment are not used: through a proxy, the proxy would
choose the address.

A refused connection raises :class:`AddressRefused` (not an httpx error, so
it passes through httpx unchanged); each caller turns it into its own error.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable

import httpcore
import httpx

from server.network.policy import NetworkPolicy, normalise

SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


class AddressRefused(Exception):
    """The policy refuses every address the host resolves to: ``"refused: <why>"``."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, policy: NetworkPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        refusals: list[str] = []
        last_error: Exception | None = None
        tried: set[str] = set()
        for _family, _type, _proto, _name, sockaddr in infos:
            address = normalise(ipaddress.ip_address(sockaddr[0]))
            if str(address) in tried:
                continue
            tried.add(str(address))
            refusal = self._policy.resolved_refusal(host, address)
            if refusal is not None:
                refusals.append(refusal)
                continue
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:  # try the next address, as the OS resolver path would
                last_error = exc
        if last_error is not None:
            raise last_error
        raise AddressRefused(f"refused: {refusals[0] if refusals else f'{host} resolves to no address'}")

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[SocketOption] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("refused: Unix sockets are not connected to")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, with its connection pool built on :class:`GuardedBackend`."""

    def __init__(self, policy: NetworkPolicy, ssl_context: ssl.SSLContext, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits()
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        # httpx exposes no network backend option; the pool it builds is replaced by an equal one that has ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy),
        )
