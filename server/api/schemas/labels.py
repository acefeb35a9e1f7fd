"""Answers of label discovery: names for a selector, values of one name."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LabelNames(BaseModel):
    names: list[str]
    sample_labels: list[str] = Field(description="the names among names that are pprof sample labels")


class LabelValues(BaseModel):
    name: str
    values: list[str]
    sample_label: bool
