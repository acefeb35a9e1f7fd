"""A limit on failed authentications per client address: guessing tokens takes forever, not an afternoon.

Tokens from ``stackyard token`` carry 256 random bits, but operators also
configure digests of tokens they chose themselves, and those can be guessed.
Every refused guess (a wrong token at ``POST /api/v1/login``, or a wrong
bearer token or cookie on any route that needs one) is recorded against the
client's address; once an address has ``max_failures`` failures within the
last ``window_s`` seconds, further attempts from it are answered 429 without
looking at the token, so a correct guess cannot be told from a wrong one
until the window has room again. Successful attempts are not counted: a user
who signs in often is not an attacker.

The window slides (a log of failure times, not fixed buckets), so a client
can never fit ``2 * max_failures`` guesses around a bucket boundary. The
state lives in this process's memory: it is lost on restart and not shared
between worker processes or replicas, so N processes allow N times the limit.
The number of addresses remembered is bounded; past it the longest-idle one
is forgotten, which costs an attacker with that many addresses nothing they
did not already have.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

#: Addresses remembered at once; one entry costs at most ``max_failures`` floats.
MAX_CLIENTS = 10_000
#: What a request without a peer address (a Unix socket) is counted as.
UNKNOWN_CLIENT = "unknown"


class FailureLimiter:
    def __init__(
        self,
        max_failures: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        if max_failures < 1 or window_s <= 0:
            raise ValueError("max_failures must be at least 1 and window_s positive")
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()  # the login route runs in the thread pool, the middleware in the loop

    def _recent(self, client: str, now: float) -> deque[float] | None:
        """The client's failures still inside the window (older ones dropped); None if there are none."""
        times = self._failures.get(client)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may try again, or None if it may try now."""
        with self._lock:
            now = self._clock()
            times = self._recent(client, now)
            if times is None or len(times) < self.max_failures:
                return None
            return max(times[0] + self.window_s - now, 0.0)

    def record_failure(self, client: str) -> None:
        with self._lock:
            now = self._clock()
            times = self._recent(client, now)
            if times is None:
                times = self._failures[client] = deque(maxlen=self.max_failures)
                while len(self._failures) > self._max_clients:
                    self._failures.popitem(last=False)
            else:
                self._failures.move_to_end(client)
            times.append(now)

    def __len__(self) -> int:
        """Addresses remembered (some may have only expired failures left)."""
        return len(self._failures)


def retry_after_header(seconds: float) -> str:
    """Whole seconds, rounded up, and at least 1: ``Retry-After: 0`` would invite an immediate retry."""
    return str(max(1, math.ceil(seconds)))


def client_address(scope_client: tuple[str, int] | list[object] | None) -> str:
    """The peer address of an ASGI scope's ``client``.

    Behind a reverse proxy this is the proxy, so all clients share one limit,
    unless the proxy is named in ``STACKYARD_TRUSTED_PROXIES``: then uvicorn
    has already replaced the peer address with the client the proxy names in
    ``X-Forwarded-For`` (:mod:`server.network.proxies`). The header is never read
    here, and from no other peer, because any client can write it.
    """
    if not scope_client:
        return UNKNOWN_CLIENT
    return str(scope_client[0])


def rate_limited_counter(registry: CollectorRegistry) -> Counter:
    """``stackyard_auth_rate_limited_total{via}``: attempts answered 429, created with both labels at zero."""
    counter = Counter(
        "stackyard_auth_rate_limited_total",
        "Authentication attempts refused with 429 because the client address had too many recent failures, "
        "by where the token was presented (login: POST /api/v1/login; token: a bearer token or cookie).",
        ["via"],
        registry=registry,
    )
    for via in ("login", "token"):
        counter.labels(via)
    return counter


class AuthThrottle:
    """The limiter and its counter, shared by the login route and the auth middleware of one app."""

    def __init__(self, limiter: FailureLimiter, refused: Counter) -> None:
        self.limiter = limiter
        self.refused = refused

    @classmethod
    def create(cls, max_failures: int, window_s: float, registry: CollectorRegistry) -> AuthThrottle:
        return cls(FailureLimiter(max_failures, window_s), rate_limited_counter(registry))

    def blocked(self, client: str, via: str) -> float | None:
        """Seconds ``client`` must wait (the refusal counted under ``via``), or None if it may try now."""
        wait = self.limiter.retry_after(client)
        if wait is not None:
            self.refused.labels(via).inc()
        return wait

    def failed(self, client: str) -> None:
        self.limiter.record_failure(client)


def too_many_body(wait_s: float) -> dict[str, object]:
    """The 429 body: says when to come back, nothing about the token or the limit's setting."""
    return {
        "error": f"too many failed authentication attempts; try again in {retry_after_header(wait_s)} s",
        "status": 429,
    }
