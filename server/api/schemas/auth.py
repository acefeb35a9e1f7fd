"""The dashboard's login: the token in, the scopes it grants out."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LoginIn(BaseModel):
    token: str = Field(min_length=1, max_length=4096)


class LoginOut(BaseModel):
    scopes: list[str] = Field(description="what the token may do: read, ingest, admin")
