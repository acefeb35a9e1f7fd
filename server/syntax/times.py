"""Times as users type them: RFC 3339, Unix seconds, or relative to now (``now-1h``)."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime

from server.errors import TimeRangeError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w|y)")
_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 7 * 86_400_000_000_000,
    "y": 365 * 86_400_000_000_000,
}


# Every time is stored and compared as 64-bit nanoseconds since 1970 (BIGINT columns, numpy
# arrays), which reach from 1677-09-21 to 2262-04-11. Times are accepted in the whole years
# inside that span, so a bucket, a step or a day added to one still fits; anything else is
# refused here rather than failing in the database (a 500) or wrapping in numpy.
_MIN_NS = int((datetime(1678, 1, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 10**9
_MAX_NS = int((datetime(2262, 1, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 10**9 - 1
#: The longest duration: what 64-bit nanoseconds hold (about 292 years).
MAX_DURATION_NS = 2**63 - 1
YEARS = "years 1678 to 2261"


def parse_duration_ns(text: str, parameter: str = "duration") -> int:
    """``1h30m``, ``15s``, ``7d`` to nanoseconds."""
    text = text.strip()
    position = 0
    total = 0.0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS_NS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise TimeRangeError(parameter, f"{text!r} is not a duration (like 30s, 15m, 1h30m, 7d)")
    if not total <= MAX_DURATION_NS:  # also catches inf from a 400-digit number
        raise TimeRangeError(parameter, f"{text!r} is longer than 292 years (64-bit nanoseconds)")
    return int(total)


def parse_time_ns(text: str, parameter: str, now_ns: int | None = None) -> int:
    """Parse one time; ``now_ns`` is injectable so tests and a query's two ends agree on "now".

    Times outside the years 1678 to 2261 are refused: every accepted time fits in 64-bit
    nanoseconds with room to spare, and can be formatted.
    """
    value = _parse_time_ns(text, parameter, now_ns)
    if not _MIN_NS <= value <= _MAX_NS:
        raise TimeRangeError(parameter, f"{text.strip()!r} is out of range ({YEARS})")
    return value


def check_time_ns(value: int, parameter: str, hint: str = "") -> int:
    """A time that did not come from text (a profile's own ``time_nanos``) in the same span as parsed ones."""
    if not _MIN_NS <= value <= _MAX_NS:
        raise TimeRangeError(parameter, f"{value} ns since 1970 is out of range ({YEARS}){hint}")
    return value


def _parse_time_ns(text: str, parameter: str, now_ns: int | None) -> int:
    now = time.time_ns() if now_ns is None else now_ns
    value = text.strip()
    if not value:
        raise TimeRangeError(parameter, "empty time")
    if value == "now":
        return now
    if value.startswith("now-") or value.startswith("now+"):
        offset = parse_duration_ns(value[4:], parameter)
        return now - offset if value[3] == "-" else now + offset
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if math.isnan(seconds) or abs(seconds) > 1e11:
            raise TimeRangeError(parameter, f"{value!r} is out of range for Unix seconds")
        return round(seconds * 1e9)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise TimeRangeError(parameter, f"{value!r} is not RFC 3339, Unix seconds or now-DURATION") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp()) * 1_000_000_000 + parsed.microsecond * 1000


def time_range_ns(
    start: str | None, end: str | None, default_span: str = "1h", names: tuple[str, str] = ("from", "to")
) -> tuple[int, int]:
    """``[from, to]`` in nanoseconds; defaults to the last hour. ``from`` must come before ``to``."""
    now = time.time_ns()
    end_ns = parse_time_ns(end, names[1], now) if end else now
    start_ns = parse_time_ns(start, names[0], now) if start else end_ns - parse_duration_ns(default_span)
    if start_ns >= end_ns:
        raise TimeRangeError(
            names[0], f"{names[0]} ({format_time(start_ns)}) must be before {names[1]} ({format_time(end_ns)})"
        )
    return start_ns, end_ns


def format_time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


def format_duration(seconds: float) -> str:
    """``90`` to ``1m30s``: the inverse of :func:`parse_duration_ns` for whole seconds and above."""
    if seconds < 1 or seconds != int(seconds):
        return f"{seconds:g}s"
    remaining = int(seconds)
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if remaining >= size:
            parts.append(f"{remaining // size}{unit}")
            remaining %= size
    return "".join(parts)
