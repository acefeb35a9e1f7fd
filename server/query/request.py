"""What every profile query names: which series, which kind, which sample type, when, how to aggregate."""

from __future__ import annotations

from dataclasses import dataclass

from server.errors import InvalidParameter
from server.pprof.kinds import KINDS
from server.query.selector import Selector, parse_selector
from server.syntax.times import time_range_ns


@dataclass(frozen=True, slots=True)
class ProfileQuery:
    kind: str
    selector: Selector
    start_ns: int
    end_ns: int
    sample: str | None = None
    aggregation: str | None = None
    rollups: bool = True  # False reads raw profiles only (tests prove both give the same answer)

    @classmethod
    def parse(
        cls,
        kind: str | None,
        query: str | None,
        start: str | None,
        end: str | None,
        sample: str | None = None,
        aggregation: str | None = None,
        default_selector: Selector | None = None,
        default_range: tuple[int, int] | None = None,
        names: tuple[str, str, str] = ("query", "from", "to"),
    ) -> ProfileQuery:
        """Validate raw parameters; the ``default_*`` arguments let a diff's base inherit the comparison's."""
        if not kind:
            raise InvalidParameter("type", f"required; one of {', '.join(KINDS)}")
        if kind not in KINDS:
            raise InvalidParameter("type", f"unknown profile type {kind!r}; expected one of {', '.join(KINDS)}")
        if aggregation not in (None, "", "sum", "avg"):
            raise InvalidParameter("aggregation", f"{aggregation!r} is not sum or avg")
        if default_range is not None and not start and not end:
            start_ns, end_ns = default_range
        else:
            start_ns, end_ns = time_range_ns(start, end, names=(names[1], names[2]))
        selector = parse_selector(query, names[0]) if query or default_selector is None else default_selector
        return cls(kind, selector, start_ns, end_ns, sample or None, aggregation or None)
