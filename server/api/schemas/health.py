"""Answers of liveness and readiness."""

from __future__ import annotations

from pydantic import BaseModel, Field


class HealthOut(BaseModel):
    status: str = Field(description="always ok: the process answers")
    version: str


class ReadyOut(BaseModel):
    status: str = Field(description="ok, or unavailable (with 503)")
    error: str | None = Field(default=None, exclude_if=lambda v: v is None, description="why not ready")
