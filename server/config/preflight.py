"""Config-file targets and webhooks checked against the network policy when the file is loaded, names resolved.

A target typed into the API is refused at once; one written in the config
file used to be refused only when scraped, so a file pointing at the metadata
service started fine and showed the refusal in a target's health page. Here
each target's name is resolved once at load time and refused the way the
connect-time guard (:mod:`server.network.guard`) would refuse it: when *every*
address it resolves to is refused. A name resolving to allowed and refused
addresses passes, since the guard would connect to an allowed one.

A name that does not resolve now (no such host yet, DNS down, a slow
answer) does not stop the start: a fleet's names come and go, as Prometheus
users expect, and the guard checks every address again at each connection,
so nothing is reached that the policy refuses. It is logged as a warning.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from urllib.parse import urlsplit

from server.network.policy import NetworkPolicy, numeric_host
from server.scrape.spec import TargetSpec

log = logging.getLogger(__name__)

#: How long all names of one config file may take to resolve; names still unanswered count as unresolved.
RESOLVE_TIMEOUT_S = 5.0
#: Names resolved at once.
RESOLVE_THREADS = 16


@dataclass(frozen=True, slots=True)
class Verdict:
    """What resolving one ``host:port`` found: a refusal, a reason it did not resolve, or neither (allowed)."""

    refusal: str | None = None
    unresolved: str | None = None


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def judge(host: str, port: int, policy: NetworkPolicy) -> Verdict:
    """Resolve ``host`` as the guard does and refuse it when no address it resolves to is allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
        return Verdict(unresolved=str(exc) or type(exc).__name__)
    refusals: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        refusal = policy.resolved_refusal(host, ipaddress.ip_address(sockaddr[0]))
        if refusal is None:
            return Verdict()
        refusals.append(refusal)
    if not refusals:
        return Verdict(unresolved="no address")
    return Verdict(refusal=f"refused: {refusals[0]}")


def refused_targets(
    targets: Iterable[TargetSpec],
    policy: NetworkPolicy,
    timeout_s: float = RESOLVE_TIMEOUT_S,
) -> dict[str, str]:
    """``{target.key: "refused: ..."}`` for the targets whose names resolve only into refused networks."""
    listed = list(targets)
    refused = refused_urls([target.url for target in listed], policy, timeout_s)
    return {target.key: refused[target.url] for target in listed if target.url in refused}


def refused_urls(urls: Iterable[str], policy: NetworkPolicy, timeout_s: float = RESOLVE_TIMEOUT_S) -> dict[str, str]:
    """``{url: "refused: ..."}`` for the URLs (targets, webhooks) whose names resolve only into refused networks.

    Hosts written as addresses are left out (``check_target`` and
    ``check_webhook_url`` refuse those without DNS). Each distinct
    ``host:port`` is resolved once, in parallel.
    """
    by_host: dict[tuple[str, int], list[str]] = {}
    for url in urls:
        host, port = host_port(url)
        if host and numeric_host(host) is None:
            by_host.setdefault((host, port), []).append(url)
    if not by_host:
        return {}
    pool = ThreadPoolExecutor(max_workers=min(RESOLVE_THREADS, len(by_host)), thread_name_prefix="resolve")
    try:
        futures = {pool.submit(judge, host, port, policy): (host, port) for host, port in by_host}
        done, _pending = wait(futures, timeout=timeout_s)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a hung lookup must not hold up the start
    refused: dict[str, str] = {}
    for future, (host, port) in futures.items():
        verdict = future.result() if future in done else Verdict(unresolved=f"no answer within {timeout_s:g} s")
        if verdict.refusal is not None:
            for url in by_host[(host, port)]:
                refused[url] = verdict.refusal
        elif verdict.unresolved is not None:
            log.warning(
                "config target does not resolve now; its addresses are checked when it is scraped",
                extra={"host": host, "port": port, "error": verdict.unresolved},
            )
    return refused
