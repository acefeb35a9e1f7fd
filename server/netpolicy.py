"""Which addresses Stackyard may scrape: an allow list and a deny list of networks.

A scrape target is a URL someone typed, so it is a way to make the server
fetch from places its users cannot reach: the cloud metadata service (which
hands out instance credentials), or an internal admin port. The policy is
applied to *addresses*, after name resolution and at connect time (see
:mod:`collector.guard`), so a host name cannot point around it; here it is
also applied to URLs whose host is written as an address, so those are
refused when the target is registered.

The deny list wins over the allow list; an empty allow list allows every
address the deny list does not name.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Refused unless the deny list is replaced: link-local (where clouds serve instance credentials)
#: and the metadata addresses outside it (AWS over IPv6, Alibaba Cloud, Azure's wire server).
DEFAULT_DENY_NETWORKS = (
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
    "168.63.129.16/32",
)


def normalise(address: IPAddress) -> IPAddress:
    """``::ffff:169.254.169.254`` is 169.254.169.254 on the wire, so it is checked as that."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def numeric_host(host: str) -> IPAddress | None:
    """The address a host written as a number stands for, without any DNS lookup.

    Beyond dotted quads this accepts what the C resolver accepts as a number
    (``2852039166``, ``0xa9fea9fe``, ``169.254.43518``): a URL using such a
    form reaches the same address, so it must be refused the same way.
    """
    host = host.strip("[]")
    try:
        return normalise(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return normalise(ipaddress.ip_address(infos[0][4][0])) if infos else None


class NetworkPolicy:
    def __init__(self, allow: Iterable[str] = (), deny: Iterable[str] = DEFAULT_DENY_NETWORKS) -> None:
        self.allow: list[IPNetwork] = [ipaddress.ip_network(n, strict=False) for n in allow]
        self.deny: list[IPNetwork] = [ipaddress.ip_network(n, strict=False) for n in deny]

    def why_not(self, address: IPAddress) -> str | None:
        """Why ``address`` may not be scraped (``"in the denied network ..."``), or None if it may."""
        ip = normalise(address)
        for network in self.deny:
            if ip in network:
                return f"in the denied network {network}"
        if self.allow and not any(ip in network for network in self.allow):
            return "outside the allowed networks"
        return None

    def refusal(self, address: IPAddress | str) -> str | None:
        """The same as a sentence: ``"169.254.169.254 is in the denied network 169.254.0.0/16"``."""
        ip = normalise(ipaddress.ip_address(address) if isinstance(address, str) else address)
        why = self.why_not(ip)
        return None if why is None else f"{ip} is {why}"

    def resolved_refusal(self, host: str, address: IPAddress) -> str | None:
        """The refusal of one address ``host`` resolved to, naming the name when there was one:
        ``"localhost resolves to 127.0.0.1, which is in the denied network 127.0.0.0/8"``.

        Shared by the connect-time guard and the config-file check, so both say the same thing.
        """
        ip = normalise(address)
        why = self.why_not(ip)
        if why is None:
            return None
        return f"{ip} is {why}" if numeric_host(host) == ip else f"{host} resolves to {ip}, which is {why}"

    def literal_refusal(self, host: str) -> str | None:
        """The refusal for a host written as an address; None for names (they are checked when resolved)."""
        ip = numeric_host(host)
        return None if ip is None else self.refusal(ip)
