"""Alert rules: what they look like, and the one parser the API and the config file share.

A rule watches one profile type's per-profile totals on every series its
selector matches. Its ``expr`` is one of::

    value > N            value < N
    increase(10m) > N    increase(30m) > 50%
    slope(10m) > 100/min (or /s, /h)
    leak_suspect(30m)

Parsing never guesses: a mistake raises :class:`~server.errors.InvalidParameter`
naming the field (``expr``, ``for``, ``type`` ...), which the API answers as a
4xx and the config loader reports at the field's line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from server.errors import InvalidParameter
from server.pprof.kinds import KINDS
from server.query.selector import Selector, parse_selector
from server.syntax.labels import LABEL_NAME, MAX_LABEL_VALUE
from server.syntax.times import format_duration, parse_duration_ns

#: Sample types of each profile type (Go's names), so a rule naming one that cannot exist is refused.
SAMPLE_TYPES = {
    "cpu": ("samples", "cpu"),
    "heap": ("alloc_objects", "alloc_space", "inuse_objects", "inuse_space"),
    "allocs": ("alloc_objects", "alloc_space", "inuse_objects", "inuse_space"),
    "goroutine": ("goroutine",),
    "mutex": ("contentions", "delay"),
    "block": ("contentions", "delay"),
    "threadcreate": ("threadcreate",),
    "goroutineleak": ("goroutine",),
}
SLOPE_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0}
MAX_WINDOW_NS = 7 * 86_400 * 10**9
MAX_FOR_NS = 7 * 86_400 * 10**9
MAX_NAME = 256
MAX_ANNOTATION = 4096
RULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_:.-]*")

_NUMBER = r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
_WINDOW = r"\(\s*([^)]*?)\s*\)"
_VALUE = re.compile(rf"value\s*([<>])\s*{_NUMBER}")
_INCREASE = re.compile(rf"increase\s*{_WINDOW}\s*([<>])\s*{_NUMBER}\s*(%?)")
_SLOPE = re.compile(rf"slope\s*{_WINDOW}\s*([<>])\s*{_NUMBER}\s*/\s*(s|min|h)")
_LEAK = re.compile(rf"leak_suspect\s*{_WINDOW}")
_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_TEMPLATE_VAR = re.compile(r"\$value|\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)")


@dataclass(frozen=True, slots=True)
class Expr:
    """A parsed ``expr``: ``function`` is value, increase, increase_pct, slope or leak_suspect.

    ``threshold`` is in the rule's own unit: per second for slopes (a
    ``100/min`` threshold is kept as 100 with ``per_s`` 60, so the value
    shown to people is in the unit they wrote).
    """

    text: str
    function: str
    op: str = ">"
    threshold: float = 0.0
    window_ns: int = 0
    per_s: float = 1.0

    def holds(self, value: float) -> bool:
        return value > self.threshold if self.op == ">" else value < self.threshold


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    query: str
    type: str
    expr: Expr
    for_s: float = 0.0
    sample: str | None = None
    receiver: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    source: str = "api"  # "api" (stored, deletable) or "config" (from the YAML file)
    #: When an API rule was created (0 for config rules): a rule made again under the same name is another rule.
    created_ns: int = 0

    @property
    def selector(self) -> Selector:
        return parse_selector(self.query)

    def to_json(self) -> dict[str, Any]:
        """The rule in the form :func:`parse_rule` reads: what the store keeps of an API rule."""
        return {
            "name": self.name,
            "query": self.query,
            "type": self.type,
            "sample": self.sample,
            "expr": self.expr.text,
            "for": format_duration(self.for_s),
            "receiver": self.receiver,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "source": self.source,
        }


def _window(text: str, expr: str) -> int:
    if text.startswith("-"):
        raise InvalidParameter("expr", f"the window in {expr!r} is negative; use a positive duration like 10m")
    try:
        window = parse_duration_ns(text, "expr")
    except InvalidParameter:
        raise InvalidParameter("expr", f"{text!r} in {expr!r} is not a duration (like 30s, 10m, 1h)") from None
    if window <= 0:
        raise InvalidParameter("expr", f"the window in {expr!r} must be longer than 0s")
    if window > MAX_WINDOW_NS:
        raise InvalidParameter("expr", f"the window in {expr!r} is longer than the maximum of 7d")
    return window


def _number(text: str, expr: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidParameter("expr", f"the threshold in {expr!r} is not a finite number")
    return value


def parse_expr(text: str) -> Expr:
    """Parse one ``expr``; raises :class:`InvalidParameter` for ``expr`` saying which forms exist."""
    expr = " ".join(text.split())
    if match := _VALUE.fullmatch(expr):
        return Expr(expr, "value", match.group(1), _number(match.group(2), expr))
    if match := _INCREASE.fullmatch(expr):
        window, op, number, percent = match.groups()
        function = "increase_pct" if percent else "increase"
        return Expr(expr, function, op, _number(number, expr), _window(window, expr))
    if match := _SLOPE.fullmatch(expr):
        window, op, number, unit = match.groups()
        return Expr(expr, "slope", op, _number(number, expr), _window(window, expr), SLOPE_UNITS[unit])
    if match := _LEAK.fullmatch(expr):
        return Expr(expr, "leak_suspect", ">", 0.0, _window(match.group(1), expr))
    hint = ""
    if expr.startswith("slope") and "/" not in expr:
        hint = " (a slope threshold needs a unit: /s, /min or /h)"
    raise InvalidParameter(
        "expr",
        f"{text!r} does not parse{hint}; expected one of: value > N, value < N, increase(WINDOW) > N, "
        "increase(WINDOW) > N%, slope(WINDOW) > N/s|/min|/h, leak_suspect(WINDOW)",
    )


def check_template(text: str, parameter: str) -> None:
    """Only ``{{ $labels.NAME }}`` and ``{{ $value }}`` are understood; anything else is a typo to report now."""
    for match in _TEMPLATE.finditer(text):
        if not _TEMPLATE_VAR.fullmatch(match.group(1)):
            raise InvalidParameter(
                parameter, f"{{{{ {match.group(1)} }}}} is not a template this server knows; use $labels.NAME or $value"
            )


def expand_template(text: str, labels: dict[str, str], value: float | None) -> str:
    def substitute(match: re.Match[str]) -> str:
        var = _TEMPLATE_VAR.fullmatch(match.group(1))
        if var is None:
            return match.group(0)
        if var.group(1) is not None:
            return labels.get(var.group(1), "")
        return "" if value is None else format_value(value)

    return _TEMPLATE.sub(substitute, text)


def format_value(value: float) -> str:
    return f"{value:.6g}" if value != int(value) or abs(value) >= 1e15 else str(int(value))


def _labels(raw: Any, parameter: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidParameter(parameter, "expected a mapping of names to strings")
    out: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise InvalidParameter(f"{parameter}.{name}", f"{name!r} is not a valid label name")
        if not isinstance(value, str):
            raise InvalidParameter(f"{parameter}.{name}", "expected a string")
        limit = MAX_ANNOTATION if parameter == "annotations" else MAX_LABEL_VALUE
        if len(value) > limit:
            raise InvalidParameter(f"{parameter}.{name}", f"longer than {limit} characters")
        if parameter == "annotations":
            check_template(value, f"{parameter}.{name}")
        out[name] = value
    return out


def _string(data: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise InvalidParameter(key, "required, but missing")
        return None
    if not isinstance(value, str):
        raise InvalidParameter(key, f"expected a string, got {type(value).__name__}")
    if required and not value.strip():
        raise InvalidParameter(key, "must not be empty")
    return value


RULE_KEYS = ("name", "query", "type", "sample", "expr", "for", "receiver", "labels", "annotations")


def parse_rule(data: dict[str, Any], source: str = "api") -> Rule:
    """A rule from its JSON (API) or YAML (config) form; the first mistake raises, naming its field."""
    if not isinstance(data, dict):
        raise InvalidParameter("rule", "expected a JSON object")
    for key in data:
        if key not in RULE_KEYS:
            raise InvalidParameter(str(key), f"unknown field; a rule has {', '.join(RULE_KEYS)}")
    name = _string(data, "name", required=True)
    assert name is not None
    if len(name) > MAX_NAME or not RULE_NAME.fullmatch(name):
        raise InvalidParameter("name", f"{name!r} must be letters, digits and _ : . - (at most {MAX_NAME})")
    kind = _string(data, "type", required=True)
    if kind not in KINDS:
        raise InvalidParameter("type", f"unknown profile type {kind!r}; expected one of {', '.join(KINDS)}")
    query = _string(data, "query") or "{}"
    parse_selector(query, "query")
    sample = _string(data, "sample") or None
    known = SAMPLE_TYPES.get(kind)
    if sample is not None and known is not None and sample not in known:
        choices = ", ".join(known)
        raise InvalidParameter("sample", f"unknown sample type {sample!r} for {kind}; expected one of {choices}")
    expr_text = _string(data, "expr", required=True)
    assert expr_text is not None
    expr = parse_expr(expr_text)
    if expr.function == "leak_suspect" and kind != "goroutine":
        raise InvalidParameter("expr", "leak_suspect(WINDOW) only applies to type goroutine")
    for_text = _string(data, "for") or "0s"
    if for_text.strip().startswith("-"):
        raise InvalidParameter("for", f"{for_text!r} is negative; use a duration like 5m")
    for_ns = parse_duration_ns(for_text, "for")
    if for_ns > MAX_FOR_NS:
        raise InvalidParameter("for", f"{for_text!r} is longer than the maximum of 7d")
    receiver = _string(data, "receiver") or None
    return Rule(
        name=name,
        query=query,
        type=kind,
        expr=expr,
        for_s=for_ns / 1e9,
        sample=sample,
        receiver=receiver,
        labels=_labels(data.get("labels"), "labels"),
        annotations=_labels(data.get("annotations"), "annotations"),
        source=source,
    )
