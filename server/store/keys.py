"""Stable 64-bit content hashes for deduplicated rows.

Hashes are unique keys in the database, so they must not depend on Python's
per-process string hash; blake2b truncated to a signed 64-bit integer fits a
BIGINT column on both databases.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable


def hash64(parts: Iterable[str]) -> int:
    digest = hashlib.blake2b("\x00".join(parts).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def labels_hash(labels: dict[str, str]) -> int:
    return hash64([json.dumps(sorted(labels.items()), ensure_ascii=False)])
