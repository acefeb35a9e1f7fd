"""Field types of the config file's models: durations with units, label names and values, checked as read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator

from server.config.validation import describe_value
from server.errors import StackyardError
from server.scrape.spec import MIN_INTERVAL_S
from server.syntax.labels import LABEL_NAME, MAX_LABEL_VALUE, pasted_hint
from server.syntax.times import parse_duration_ns

MAX_INTERVAL_S = 86_400.0
MAX_TIMEOUT_S = 3_600.0


def _duration(low: float, high: float, low_inclusive: bool = True) -> Callable[[Any], float]:
    """A validator for Prometheus-style durations; bare numbers are refused because their unit is a guess."""

    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"expected a duration like 15s, got {describe_value(value)}")
        if not isinstance(value, str):
            raise ValueError(f"{value!r} has no unit; write it like {value}s or {value}m")
        try:
            seconds = parse_duration_ns(value) / 1e9
        except StackyardError:
            raise ValueError(f"{value!r} is not a duration (like 30s, 15m, 1h30m)") from None
        too_low = seconds < low if low_inclusive else seconds <= low
        if too_low or seconds > high:
            lowest = f"{low:g}s" if low_inclusive else "more than 0s"
            raise ValueError(f"{value!r} is out of range: must be {lowest} to {_format_seconds(high)}")
        return seconds

    return parse


def _format_seconds(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _check_label_name(name: Any) -> Any:
    if not isinstance(name, str):
        return name  # the strict str check names the type
    if not LABEL_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid label name (letters, digits and _; not starting with a digit)")
    if name.startswith("__"):
        raise ValueError(f"label names starting with __ are reserved: {name!r}")
    return name


def _check_label_value(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_LABEL_VALUE:
        raise ValueError(f"label values are at most {MAX_LABEL_VALUE} characters")
    hint = pasted_hint(value) if isinstance(value, str) else None
    if hint:
        raise ValueError(f"{value!r} {hint}")
    return value


Interval = Annotated[float, BeforeValidator(_duration(MIN_INTERVAL_S, MAX_INTERVAL_S))]
Timeout = Annotated[float, BeforeValidator(_duration(0.0, MAX_TIMEOUT_S, low_inclusive=False))]
RefreshInterval = Annotated[float, BeforeValidator(_duration(0.0, MAX_INTERVAL_S, low_inclusive=False))]
LabelName = Annotated[str, BeforeValidator(_check_label_name)]
LabelValue = Annotated[str, BeforeValidator(_check_label_value)]
