"""Pyroscope's profile type IDs and Stackyard's (kind, sample type), both ways.

An ID is ``<name>:<sample_type>:<sample_unit>:<period_type>:<period_unit>``,
derived as Pyroscope derives it for Go: the name from the profile kind
(``process_cpu`` for CPU, ``memory`` for heap and allocations, otherwise the
kind itself), the rest from the stored profile's sample and period types. So
a scraped Go CPU profile offers ``process_cpu:cpu:nanoseconds:cpu:nanoseconds``
and ``process_cpu:samples:count:cpu:nanoseconds``.

Memory is split the way its values mean something: ``inuse_*`` come from
heap profiles (a snapshot), ``alloc_*`` from ``allocs`` profiles, which the
collector stores as deltas (a heap profile's own ``alloc_*`` count since the
process started, which no time range can use).

A series may name itself with a ``__name__`` label that is an accepted
alternative for its kind: the pyroscope-go SDK uploads goroutines as
``goroutines``, scraping calls them ``goroutine``; each becomes its own type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from server.errors import InvalidParameter
from server.pprof.kinds import KINDS
from server.store.profiles import Shape

#: The type name of a kind, where it is not the kind itself.
NAMES = {"cpu": "process_cpu", "heap": "memory", "allocs": "memory"}
#: Other names a series of the kind may carry in its ``__name__`` label.
ALIASES = {"goroutine": ("goroutines",)}
#: Sample types a kind offers, where it does not offer all it stores.
OFFERED = {"heap": ("inuse_space", "inuse_objects"), "allocs": ("alloc_space", "alloc_objects")}
NAME_LABEL = "__name__"


@dataclass(frozen=True, slots=True, order=True)
class ProfileType:
    name: str
    sample_type: str
    sample_unit: str
    period_type: str
    period_unit: str

    @property
    def id(self) -> str:
        return ":".join((self.name, self.sample_type, self.sample_unit, self.period_type, self.period_unit))

    def labels(self) -> dict[str, str]:
        """The virtual labels a Pyroscope selector may match on."""
        return {
            "__name__": self.name,
            "__profile_type__": self.id,
            "__type__": self.sample_type,
            "__unit__": self.sample_unit,
            "__period_type__": self.period_type,
            "__period_unit__": self.period_unit,
        }


def type_name(kind: str, labels: Mapping[str, str]) -> str:
    alias = labels.get(NAME_LABEL)
    if alias is not None and alias in ALIASES.get(kind, ()):
        return alias
    return NAMES.get(kind, kind)


def types_of(kind: str, labels: Mapping[str, str], shape: Shape) -> list[ProfileType]:
    """The profile types one series offers, from the shape of its stored profiles."""
    name = type_name(kind, labels)
    period_type, _, period_unit = shape.period_type.partition("/")
    offered = OFFERED.get(kind)
    found = []
    for entry in shape.sample_types:
        sample_type, _, unit = entry.partition("/")
        if offered is None or sample_type in offered:
            found.append(ProfileType(name, sample_type, unit, period_type, period_unit))
    return found


def parse_id(text: str, parameter: str = "profile_typeID") -> ProfileType:
    parts = text.split(":")
    if len(parts) != 5 or not parts[0] or not parts[1]:
        raise InvalidParameter(
            parameter,
            f"{text!r} is not a profile type ID (name:sample_type:sample_unit:period_type:period_unit, "
            "e.g. process_cpu:cpu:nanoseconds:cpu:nanoseconds)",
        )
    return ProfileType(*parts)


def kind_of(profile_type: ProfileType) -> str | None:
    """The Stackyard kind that holds the type, or ``None`` when none does (the answer is then empty)."""
    name, sample_type = profile_type.name, profile_type.sample_type
    candidates = [kind for kind in KINDS if name == NAMES.get(kind, kind) or name in ALIASES.get(kind, ())]
    for kind in candidates:
        offered = OFFERED.get(kind)
        if offered is None or sample_type in offered:
            return kind
    return None


def series_filter(kind: str, profile_type: ProfileType) -> tuple[str, str, str] | None:
    """A matcher ``(label, op, value)`` that keeps the series of the kind carrying this type's name.

    Needed only for kinds whose series may carry an alternative name: the
    default name then means "none of the alternatives".
    """
    aliases = ALIASES.get(kind)
    if not aliases:
        return None
    if profile_type.name in aliases:
        return (NAME_LABEL, "=", profile_type.name)
    return (NAME_LABEL, "!~", "|".join(aliases))
