"""API tokens: only SHA-256 digests are configured, and a presented token is matched in constant time.

A token file that leaks (a config file in a backup, an environment dump)
gives away digests, not tokens. Matching compares the presented token's
digest with every configured digest using :func:`hmac.compare_digest` and
never stops early, so the time taken says nothing about which entry came
close.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class Scope(enum.StrEnum):
    READ = "read"
    INGEST = "ingest"
    ADMIN = "admin"


class TokenEntry(BaseModel):
    """One configured token, as written in ``STACKYARD_AUTH_TOKENS`` or the config file's ``auth.tokens``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128)
    scopes: list[Scope] = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="hex SHA-256 digest of the token")

    @field_validator("sha256")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: the token's name (for logs only, never for responses) and what it may do."""

    name: str
    scopes: frozenset[Scope]

    def allows(self, needed: Scope) -> bool:
        return Scope.ADMIN in self.scopes or needed in self.scopes


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh token: 32 random bytes, URL-safe, so it fits a header and a cookie unquoted."""
    return "sy_" + secrets.token_urlsafe(32)


class TokenSet:
    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        self._entries = [(bytes.fromhex(e.sha256), Principal(e.name, frozenset(e.scopes))) for e in entries]

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, token: str) -> Principal | None:
        """The principal whose digest matches, comparing against every entry whatever the outcome."""
        presented = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        found: Principal | None = None
        for expected, principal in self._entries:
            if hmac.compare_digest(presented, expected) and found is None:
                found = principal
        return found


def bearer_header(token: SecretStr | None) -> dict[str, str]:
    """``Authorization`` for a client of a server with access control (``STACKYARD_API_TOKEN``), if it has one.

    An empty ``STACKYARD_API_TOKEN=`` means none (``Bearer `` alone is not even a valid header).
    """
    value = token.get_secret_value().strip() if token is not None else ""
    return {"Authorization": f"Bearer {value}"} if value else {}
