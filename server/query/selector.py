"""Prometheus-style series selectors: ``{service="api", env=~"prod|dev", instance!="x"}``.

Regular expressions are fully anchored, as in Prometheus, and compiled by
:func:`server.query.regex.compile_regex` (RE2: linear-time matching, a size
budget, and Prometheus's own syntax). Parse errors point at the character where
parsing stopped, so a typo in a dashboard box is easy to find; a pattern RE2
refuses is named with its matcher (``pod=~"(a)\\1"``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from server.errors import SelectorError
from server.query.regex import Regex, RegexError, compile_regex

_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPS = ("=~", "!~", "!=", "=")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "`": "`"}


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str
    value: str
    regex: Regex | None = field(default=None, compare=False)

    def matches(self, actual: str) -> bool:
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.regex is not None
        found = self.regex.fullmatch(actual)
        return found if self.op == "=~" else not found


@dataclass(frozen=True, slots=True)
class Selector:
    matchers: tuple[Matcher, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        # A missing label matches as the empty string, as in Prometheus.
        return all(m.matches(labels.get(m.name, "")) for m in self.matchers)

    def split(self, series_label_names: set[str]) -> tuple[Selector, Selector]:
        """Matchers on series labels, and the rest (which can only be pprof sample labels)."""
        on_series = tuple(m for m in self.matchers if m.name in series_label_names)
        rest = tuple(m for m in self.matchers if m.name not in series_label_names)
        return Selector(on_series), Selector(rest)


def parse_selector(text: str | None, parameter: str = "query") -> Selector:
    if text is None or not text.strip():
        return Selector()
    parser = _Parser(text, parameter)
    return parser.parse()


class _Parser:
    def __init__(self, text: str, parameter: str) -> None:
        self.text = text
        self.pos = 0
        self.parameter = parameter

    def fail(self, message: str) -> SelectorError:
        return SelectorError(self.text, min(self.pos, len(self.text)), message, self.parameter)

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def parse(self) -> Selector:
        self.skip_space()
        if self.pos < len(self.text) and self.text[self.pos] != "{":
            raise self.fail("expected '{' (selectors look like {service=\"api\"})")
        self.pos += 1
        matchers: list[Matcher] = []
        self.skip_space()
        while True:
            self.skip_space()
            if self.pos >= len(self.text):
                raise self.fail("unclosed selector: expected '}'")
            if self.text[self.pos] == "}":
                self.pos += 1
                break
            matchers.append(self.matcher())
            self.skip_space()
            if self.pos < len(self.text) and self.text[self.pos] == ",":
                self.pos += 1
                continue
            self.skip_space()
            if self.pos >= len(self.text):
                raise self.fail("unclosed selector: expected '}'")
            if self.text[self.pos] != "}":
                raise self.fail("expected ',' or '}'")
        self.skip_space()
        if self.pos != len(self.text):
            raise self.fail("unexpected text after '}'")
        return Selector(tuple(matchers))

    def matcher(self) -> Matcher:
        name_match = _NAME.match(self.text, self.pos)
        if not name_match:
            raise self.fail("expected a label name")
        name = name_match.group(0)
        self.pos = name_match.end()
        self.skip_space()
        for op in _OPS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                break
        else:
            raise self.fail("expected one of =, !=, =~, !~")
        self.skip_space()
        value_start = self.pos
        value = self.string()
        regex = None
        if op in ("=~", "!~"):
            try:
                regex = compile_regex(value)
            except RegexError as exc:
                self.pos = value_start
                shown = value if len(value) <= 60 else value[:57] + "..."
                raise self.fail(f'invalid regular expression in {name}{op}"{shown}": {exc}') from None
        return Matcher(name, op, value, regex)

    def string(self) -> str:
        if self.pos >= len(self.text) or self.text[self.pos] not in "\"'`":
            raise self.fail("expected a quoted value")
        quote = self.text[self.pos]
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == quote:
                self.pos += 1
                return "".join(out)
            if char == "\\" and quote != "`":
                self.pos += 1
                if self.pos >= len(self.text):
                    break
                escaped = self.text[self.pos]
                if escaped not in _ESCAPES:
                    raise self.fail(f"unknown escape \\{escaped}")
                out.append(_ESCAPES[escaped])
            else:
                out.append(char)
            self.pos += 1
        raise self.fail("unterminated string")
