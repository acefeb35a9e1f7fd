"""Which addresses Stackyard may connect to: an allow list and a deny list of networks.

A scrape target or a webhook is a URL someone typed, so it is a way to make
the server fetch from (or post to) places its users cannot reach: the cloud
metadata service (which hands out instance credentials), or an internal admin
port. The policy is applied to *addresses*, after name resolution and at
connect time (see :mod:`server.network.guard`), so a host name cannot point around
it; here it is also applied to URLs whose host is written as an address, so
those are refused when the target or receiver is registered.

An address is checked as every address a connection to it reaches
(:func:`reached`), not only as written: ``0.0.0.0`` and ``[::]`` reach this
host (so a loopback deny covers them), ``::ffff:169.254.169.254`` is IPv4 on
the wire, and the IPv6 forms that carry an IPv4 address (NAT64
``64:ff9b::/96``, 6to4 ``2002::/16``, Teredo, IPv4-compatible ``::a.b.c.d``,
IPv4-translated ``::ffff:0:a.b.c.d``) reach the IPv4 address inside them.

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

#: "This host": a connection to 0.0.0.0 (Linux treats all of 0.0.0.0/8 alike) or to :: reaches local services.
_THIS_HOST_V4 = ipaddress.IPv4Network("0.0.0.0/8")
_LOOPBACKS: tuple[IPAddress, ...] = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))
#: IPv6 prefixes whose last 32 bits are an IPv4 address the packet is translated to or tunnelled toward.
_LOW_32_BITS_V4 = (
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64, well-known prefix (RFC 6052)
    ipaddress.IPv6Network("64:ff9b:1::/48"),  # NAT64, local-use prefix (RFC 8215)
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated (SIIT, RFC 2765)
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (deprecated, RFC 4291), except :: and ::1
)


def normalise(address: IPAddress) -> IPAddress:
    """``::ffff:169.254.169.254`` is 169.254.169.254 on the wire, so it is checked (and connected to) as that."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def reached(address: IPAddress) -> tuple[IPAddress, ...]:
    """Every address a connection to ``address`` may end up at: itself (normalised) first, then what it stands for.

    ``0.0.0.0`` and ``::`` reach this host, as 127.0.0.1 and ::1; IPv6 forms that embed an
    IPv4 address reach that address (and, for 0.0.0.0 embedded, this host again).
    """
    ip = normalise(address)
    found: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_unspecified:
            found.extend(_LOOPBACKS)
        elif ip != _LOOPBACKS[1]:
            if any(ip in network for network in _LOW_32_BITS_V4):
                found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
            if ip.sixtofour is not None:
                found.append(ip.sixtofour)
            if ip.teredo is not None:
                found.extend(ip.teredo)
    if any(isinstance(each, ipaddress.IPv4Address) and each in _THIS_HOST_V4 for each in found):
        found.extend(_LOOPBACKS)
    unique: list[IPAddress] = []
    for each in found:
        if each not in unique:
            unique.append(each)
    return tuple(unique)


def numeric_host(host: str) -> IPAddress | None:
    """The address a host written as a number stands for, without any DNS lookup.

    Beyond dotted quads this accepts what the C resolver accepts as a number
    (``2852039166``, ``0xa9fea9fe``, ``169.254.43518``, ``0177.0.0.1``, ``0``): a URL
    using such a form reaches the same address, so it must be refused the same way.
    One trailing dot is ignored (``169.254.169.254.``), as browsers' URL parsers do.
    """
    host = host.strip("[]")
    if host.endswith(".") and not host.endswith(".."):
        host = host[:-1]
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
        """Why ``address`` may not be connected to, as the rest of a sentence about it, or None if it may.

        ``"is in the denied network 169.254.0.0/16"``, ``"reaches 127.0.0.1, which is in the denied
        network 127.0.0.0/8"`` (for ``0.0.0.0``), ``"is outside the allowed networks"``.
        """
        forms = reached(address)
        for form in forms:
            for network in self.deny:
                if form in network:
                    why = f"is in the denied network {network}"
                    return why if form == forms[0] else f"reaches {form}, which {why}"
        if self.allow and not any(form in network for form in forms for network in self.allow):
            return "is outside the allowed networks"
        return None

    def refusal(self, address: IPAddress | str) -> str | None:
        """The same as a sentence: ``"169.254.169.254 is in the denied network 169.254.0.0/16"``."""
        ip = normalise(ipaddress.ip_address(address) if isinstance(address, str) else address)
        why = self.why_not(ip)
        return None if why is None else f"{ip} {why}"

    def resolved_refusal(self, host: str, address: IPAddress) -> str | None:
        """The refusal of one address ``host`` resolved to, naming the name when there was one:
        ``"localhost resolves to 127.0.0.1, which is in the denied network 127.0.0.0/8"``.

        Shared by the connect-time guard and the config-file check, so both say the same thing.
        """
        ip = normalise(address)
        why = self.why_not(ip)
        if why is None:
            return None
        return f"{ip} {why}" if numeric_host(host) == ip else f"{host} resolves to {ip}, which {why}"

    def literal_refusal(self, host: str) -> str | None:
        """The refusal for a host written as an address; None for names (they are checked when resolved)."""
        ip = numeric_host(host)
        return None if ip is None else self.refusal(ip)
