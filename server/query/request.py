"""What every profile query names: which series, which kind, which sample type, when, how to aggregate."""

from __future__ import annotations

from dataclasses import dataclass

from server.errors import InvalidParameter
from server.pprof.kinds import KINDS
from server.query.selector import Selector, parse_selector
from server.timeparse import time_range_ns


@dataclass(frozen=True, slots=True)
class ProfileQuery:
    kind: str
    selector: Selector
    start_ns: int
    end_ns: int
    sample: str | None = None
    aggregation: str | None = None

    @classmethod
    def parse(
        cls,
        kind: str | None,
        query: str | None,
        start: str | None,
        end: str | None,
        sample: str | None = None,
        aggregation: str | None = None,
    ) -> ProfileQuery:
        if not kind:
            raise InvalidParameter("type", f"required; one of {', '.join(KINDS)}")
        if kind not in KINDS:
            raise InvalidParameter("type", f"unknown profile type {kind!r}; expected one of {', '.join(KINDS)}")
        if aggregation not in (None, "", "sum", "avg"):
            raise InvalidParameter("aggregation", f"{aggregation!r} is not sum or avg")
        start_ns, end_ns = time_range_ns(start, end)
        return cls(kind, parse_selector(query), start_ns, end_ns, sample or None, aggregation or None)
