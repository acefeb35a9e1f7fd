"""Pyroscope's label names and selectors in Stackyard's terms, and back.

* ``service_name``, Pyroscope's service label, is Stackyard's ``service``:
  renamed in every matcher that comes in and every label set that goes out.
* ``__name__``, ``__profile_type__``, ``__type__``, ``__unit__``,
  ``__period_type__`` and ``__period_unit__`` are virtual: they describe a
  series' profile type (:mod:`server.pyroscope.profiletypes`), are matched
  against it, and never reach the store.
* A Pyroscope series is a Stackyard series and one of its profile types,
  so one Go CPU series is two Pyroscope series (cpu and samples).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from server.pyroscope.profiletypes import ProfileType, types_of
from server.query.catalog import ActiveSeries
from server.query.regex import compile_regex
from server.query.selector import Matcher, Selector, parse_selector

SERVICE = "service_name"
STORE_SERVICE = "service"
VIRTUAL = frozenset({"__name__", "__profile_type__", "__type__", "__unit__", "__period_type__", "__period_unit__"})


def to_store(name: str) -> str:
    return STORE_SERVICE if name == SERVICE else name


def to_pyroscope(labels: Mapping[str, str]) -> dict[str, str]:
    return {(SERVICE if name == STORE_SERVICE else name): value for name, value in labels.items()}


@dataclass(frozen=True, slots=True)
class PyroscopeSelector:
    """A selector split in two: matchers for the store (service renamed) and matchers on the profile type."""

    store: Selector
    virtual: Selector

    def matches(self, labels: Mapping[str, str], profile_type: ProfileType) -> bool:
        return self.store.matches(labels) and self.virtual.matches(profile_type.labels())


def parse(text: str | None, parameter: str) -> PyroscopeSelector:
    """``{service_name="api", __profile_type__=~"process_cpu:.*"}``; empty or ``{}`` selects everything."""
    selector = parse_selector(text, parameter)
    store = tuple(_renamed(m) for m in selector.matchers if m.name not in VIRTUAL)
    virtual = tuple(m for m in selector.matchers if m.name in VIRTUAL)
    return PyroscopeSelector(Selector(store), Selector(virtual))


def _renamed(matcher: Matcher) -> Matcher:
    if matcher.name != SERVICE:
        return matcher
    return Matcher(STORE_SERVICE, matcher.op, matcher.value, matcher.regex)


def matcher(name: str, op: str, value: str) -> Matcher:
    """A matcher made here (not typed by a user), its regex compiled as every selector's is."""
    return Matcher(name, op, value, compile_regex(value) if op in ("=~", "!~") else None)


@dataclass(frozen=True, slots=True)
class PyroscopeSeries:
    """One Pyroscope series: its labels as Pyroscope names them, virtual ones included."""

    labels: dict[str, str]
    profile_type: ProfileType


def expand(active: Iterable[ActiveSeries]) -> Iterator[tuple[ActiveSeries, ProfileType]]:
    for item in active:
        for profile_type in types_of(item.series.kind, item.series.labels, item.shape):
            yield item, profile_type


def matching(active: Iterable[ActiveSeries], selectors: list[PyroscopeSelector]) -> list[PyroscopeSeries]:
    """The Pyroscope series any of ``selectors`` selects (all of them when there is none)."""
    found = []
    for item, profile_type in expand(active):
        labels = item.series.labels
        if not selectors or any(s.matches(labels, profile_type) for s in selectors):
            found.append(PyroscopeSeries({**to_pyroscope(labels), **profile_type.labels()}, profile_type))
    return found
