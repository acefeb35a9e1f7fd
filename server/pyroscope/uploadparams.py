"""The query parameters and the ``sample_type_config`` part of a pyroscope-go SDK upload, checked.

``POST /ingest?name=app{k=v}&from=...&until=...&spyName=gospy&sampleRate=100&units=...&aggregationType=...``

* ``from`` and ``until`` are Unix times. Pyroscope's clients have sent them
  in seconds, milliseconds, microseconds and nanoseconds (the Go SDK sends
  nanoseconds); the number of digits tells which, as for Pyroscope itself:
  up to 10 digits are seconds, up to 13 milliseconds, up to 16 microseconds,
  more nanoseconds.
* ``format`` is absent or ``pprof``: Stackyard stores Go's pprof profiles, not
  Pyroscope's other upload formats (``jfr``, ``trie``, ``tree``, ``lines``, ...).
* ``spyName`` becomes the ``pyroscope_spy`` label, as in Pyroscope.
* ``sampleRate``, ``units`` and ``aggregationType`` describe formats that carry
  no such facts; a pprof profile has its own period and sample types, so they
  are checked and otherwise unused.
* ``sample_type_config`` maps sample type names to ``{"units", "aggregation",
  "display-name", "sampled", "cumulative"}``; its display names say what the
  profile is (``mutex_count``, ``block_count``, ``goroutines``), see
  :mod:`server.pyroscope.profilekinds`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from server.errors import InvalidParameter, TimeRangeError

#: Digits of a Unix time and the unit they mean: seconds until 2286 have 10 digits, and so on.
_DIGITS_TO_NS = ((10, 1_000_000_000), (13, 1_000_000), (16, 1_000), (19, 1))
FORMATS = frozenset({"", "pprof"})
AGGREGATIONS = frozenset({"", "sum", "average", "avg"})
MAX_SHORT_PARAMETER = 64
#: Largest ``sample_type_config`` part: the SDK's are under 300 bytes.
MAX_SAMPLE_TYPE_CONFIG = 64 * 1024


def parse_unix_time_ns(text: str, parameter: str) -> int:
    """A Unix time in s, ms, µs or ns (told apart by its number of digits) to nanoseconds."""
    digits = text.strip()
    if not digits.isdigit() or not digits.isascii():
        raise TimeRangeError(parameter, f"{text[:40]!r} is not a Unix time (a whole number of s, ms, µs or ns)")
    for width, scale in _DIGITS_TO_NS:
        if len(digits) <= width:
            return int(digits) * scale
    raise TimeRangeError(parameter, f"{text[:40]!r} has more digits than a Unix time in nanoseconds")


def time_range_ns(from_text: str | None, until_text: str | None) -> tuple[int | None, int | None]:
    start = parse_unix_time_ns(from_text, "from") if from_text else None
    end = parse_unix_time_ns(until_text, "until") if until_text else None
    if start is not None and end is not None and start > end:
        raise TimeRangeError("from", f"from ({from_text}) is after until ({until_text})")
    return start, end


def check_format(value: str | None) -> None:
    text = (value or "").strip()
    if text.lower() not in FORMATS:
        raise InvalidParameter(
            "format", f"{text[:40]!r} is not served: Stackyard takes pprof profiles only (format=pprof, or none)"
        )


def check_short(value: str | None, parameter: str) -> str:
    text = (value or "").strip()
    if len(text) > MAX_SHORT_PARAMETER or not text.isprintable():
        raise InvalidParameter(parameter, f"expected at most {MAX_SHORT_PARAMETER} printable characters")
    return text


def check_sample_rate(value: str | None) -> None:
    text = (value or "").strip()
    if text and not (text.isdigit() and text.isascii() and len(text) <= 10):
        raise InvalidParameter("sampleRate", f"{text[:40]!r} is not a whole number of samples per second")


def check_aggregation(value: str | None) -> None:
    text = (value or "").strip().lower()
    if text not in AGGREGATIONS:
        raise InvalidParameter("aggregationType", f"{text[:40]!r} is not sum or average")


@dataclass(frozen=True, slots=True)
class SampleTypeConfig:
    """One entry of ``sample_type_config``; only what Stackyard reads from it."""

    display_name: str = ""
    cumulative: bool = False


def parse_sample_type_config(data: bytes | None) -> dict[str, SampleTypeConfig]:
    """The JSON part, refused with a message naming the problem when it is not the SDK's shape."""
    if data is None:
        return {}
    where = "sample_type_config"
    if len(data) > MAX_SAMPLE_TYPE_CONFIG:
        raise InvalidParameter(where, f"larger than {MAX_SAMPLE_TYPE_CONFIG} bytes")
    try:
        parsed: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidParameter(where, f"not JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise InvalidParameter(where, "expected a JSON object of sample type names")
    config: dict[str, SampleTypeConfig] = {}
    for name, entry in parsed.items():
        if entry is None:
            continue
        if not isinstance(entry, dict):
            raise InvalidParameter(where, f"the entry of {name!r} is not an object")
        display = entry.get("display-name", "")
        cumulative = entry.get("cumulative", False)
        if not isinstance(display, str) or not isinstance(cumulative, bool):
            raise InvalidParameter(where, f"the entry of {name!r}: display-name must be a string, cumulative a boolean")
        config[name] = SampleTypeConfig(display, cumulative)
    return config
