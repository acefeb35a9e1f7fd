"""Pyroscope's legacy flamebearer JSON, as typed response models for ``/pyroscope/render`` and ``render-diff``.

Field names are Pyroscope's own (camelCase), since the Profiles Drilldown app
reads them as they are. ``timeline``, ``groups`` and ``heatmap`` are always
present (``null`` when empty), ``leftTicks`` and ``rightTicks`` only in a diff.
"""

from __future__ import annotations

from pydantic import BaseModel


class Flamebearer(BaseModel):
    names: list[str]
    #: Per level, 4 integers per node (gap, total, self, name index); 7 in a diff (gap, total, self per side, name).
    levels: list[list[int]]
    numTicks: int  # noqa: N815 (Pyroscope's field name)
    maxSelf: int  # noqa: N815


class Metadata(BaseModel):
    format: str  # "single" or "double"
    spyName: str  # noqa: N815
    sampleRate: int  # noqa: N815
    units: str
    name: str


class Timeline(BaseModel):
    """Values every ``durationDelta`` seconds from ``startTime`` (Unix seconds), zero where there is none."""

    startTime: int  # noqa: N815
    samples: list[int]
    durationDelta: int  # noqa: N815
    watermarks: dict[str, int] | None = None


class FlamebearerProfile(BaseModel):
    version: int = 1
    flamebearer: Flamebearer
    metadata: Metadata
    timeline: Timeline | None = None
    groups: dict[str, Timeline] | None = None
    heatmap: None = None


class FlamebearerDiff(FlamebearerProfile):
    leftTicks: int  # noqa: N815
    rightTicks: int  # noqa: N815
