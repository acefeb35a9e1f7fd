"""Idempotency keys: one stored profile per key, however often its writer retries.

A retry after a lost answer (the server stored the profile, then the
connection broke; the database committed, then went away before saying so)
must not store the profile twice. Each write may carry a key: the collector
derives one from (target, profile type, scrape time) (:mod:`server.scrape.keys`),
a push client sends its own. The store keeps the key's sha256, so any key
length indexes the same and a unique index makes the second write a no-op that
answers with the first.
"""

from __future__ import annotations

import hashlib

MAX_KEY_LENGTH = 256


class KeyReused(Exception):
    """The key names a stored profile of another series: a client bug, not a retry."""

    def __init__(self, profile_id: int) -> None:
        super().__init__(f"the idempotency key was already used for profile {profile_id} of another series")
        self.profile_id = profile_id


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
