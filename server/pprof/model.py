"""Resolved pprof profiles: what decode returns and encode accepts.

String-table indices and numeric ids exist only inside :mod:`decode` and
:mod:`encode`; everywhere else a sample points at ``Location`` objects, a
location at ``Line`` objects, and a line at a ``Function``. Locations and
functions are shared objects, so code that walks many samples can key
dictionaries on them by identity instead of re-hashing their contents.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ValueType:
    type: str
    unit: str

    def __str__(self) -> str:
        return f"{self.type}/{self.unit}"


@dataclass(eq=False, slots=True)
class Function:
    name: str
    system_name: str = ""
    filename: str = ""
    start_line: int = 0

    def key(self) -> tuple[str, str, str]:
        """The identity ``go tool pprof`` and the store give a function."""
        return (self.name, self.system_name, self.filename)


@dataclass(eq=False, slots=True)
class Mapping:
    """A binary or library loaded in the process; pprof names a location with no lines after its file."""

    filename: str = ""
    memory_start: int = 0
    memory_limit: int = 0
    file_offset: int = 0
    build_id: str = ""


@dataclass(frozen=True, slots=True)
class Line:
    function: Function
    line: int = 0


@dataclass(eq=False, slots=True)
class Location:
    """One program counter; ``lines`` are its inlined frames, innermost first.

    ``mapping`` is ``None`` for a location outside any mapping; a location
    with no lines (not symbolized) is named after its mapping's file.
    """

    lines: tuple[Line, ...]
    address: int = 0
    id: int = 0
    mapping: Mapping | None = None


@dataclass(eq=False, slots=True)
class Sample:
    """One stack with its values.

    ``locations`` is leaf first. ``labels`` holds string labels and
    ``num_labels`` numeric ones as ``(key, value, unit)``; both are sorted so
    equal label sets compare equal.
    """

    locations: tuple[Location, ...]
    values: tuple[int, ...]
    labels: tuple[tuple[str, str], ...] = ()
    num_labels: tuple[tuple[str, int, str], ...] = ()

    def frames(self) -> Iterator[Function]:
        """Every frame leaf first, inlined frames expanded, as pprof counts them."""
        for location in self.locations:
            for line in location.lines:
                yield line.function


@dataclass(slots=True)
class Profile:
    sample_types: list[ValueType]
    samples: list[Sample] = field(default_factory=list)
    period_type: ValueType | None = None
    period: int = 0
    time_nanos: int = 0
    duration_nanos: int = 0
    default_sample_type: str = ""
    comments: list[str] = field(default_factory=list)
    drop_frames: str = ""
    keep_frames: str = ""
    locations: list[Location] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)

    def all_locations(self) -> list[Location]:
        """Every location used; ``locations`` when decode filled it, else gathered from samples."""
        if self.locations:
            return self.locations
        seen: dict[int, Location] = {}
        for sample in self.samples:
            for location in sample.locations:
                seen.setdefault(id(location), location)
        return list(seen.values())

    def all_functions(self) -> list[Function]:
        if self.functions:
            return self.functions
        seen: dict[int, Function] = {}
        for location in self.all_locations():
            for line in location.lines:
                seen.setdefault(id(line.function), line.function)
        return list(seen.values())

    def default_sample_index(self) -> int:
        """``default_sample_type`` when set, else the last sample type, as pprof does."""
        if self.default_sample_type:
            for index, value_type in enumerate(self.sample_types):
                if value_type.type == self.default_sample_type:
                    return index
        return len(self.sample_types) - 1

    def sample_index(self, name: str) -> int:
        """The index of the sample type called ``name``; ``KeyError`` if absent."""
        for index, value_type in enumerate(self.sample_types):
            if value_type.type == name:
                return index
        raise KeyError(name)

    def totals(self) -> list[int]:
        """Per sample type, the sum over every sample (empty stacks included)."""
        sums = [0] * len(self.sample_types)
        for sample in self.samples:
            for index, value in enumerate(sample.values):
                sums[index] += value
        return sums
