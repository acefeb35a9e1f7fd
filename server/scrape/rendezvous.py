"""Rendezvous (highest random weight) hashing: which live replica scrapes a target.

Every replica scores every (replica, target) pair with the same hash and a
target belongs to the replica with the highest score. Replicas that see the
same members agree without talking to each other, and when a replica joins
or leaves only the targets it wins or held move: every other pair's score,
and so every other target's owner, stays as it was. A modulo over the
member count (``in_shard``) would move almost every target instead.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence


def score(member: str, key: str) -> int:
    """The weight of ``member`` for ``key``: 64 bits of a keyed hash, equal in every process."""
    digest = hashlib.blake2b(f"{member}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(key: str, members: Sequence[str]) -> str | None:
    """The member that owns ``key`` (the highest score; ties by name), or None when there are no members."""
    if not members:
        return None
    return max(members, key=lambda member: (score(member, key), member))


def assign(keys: Iterable[str], members: Sequence[str]) -> dict[str, list[str]]:
    """Each member's share of ``keys``, every member present (with an empty list if it owns none)."""
    shares: dict[str, list[str]] = {member: [] for member in members}
    for key in keys:
        chosen = owner(key, members)
        if chosen is not None:
            shares[chosen].append(key)
    return shares
