"""Regular expressions typed by users: RE2, so matching time is linear in the text, within a size budget.

Python's ``re`` backtracks. ``{pod=~"(.|.)*x"}`` against a 25-character label
value took 5.5 s, each further character doubled it, and the server stalled
while it ran. RE2 compiles a pattern to an automaton and never backtracks: a
match costs time proportional to the text (times a factor bounded by the
pattern's size), whatever the pattern. It is also the syntax Prometheus
selectors use (Go's ``regexp`` is RE2), so a selector copied from a Prometheus
query means the same thing here.

Every regular expression that comes from a request or a config file is
compiled by :func:`compile_regex`: selector matchers (series and pprof sample
labels alike, in queries and in alert rules) and any later regex parameter.
It refuses what RE2 does not have (backreferences, lookahead and lookbehind)
with a sentence saying so, and patterns over the size budget: at most
:data:`MAX_PATTERN_BYTES` of text and :data:`MAX_PROGRAM_BYTES` of compiled
program (RE2 stops compiling past it), so one request cannot make the
server build a huge automaton.

There is deliberately no fallback to ``re``: if the ``re2`` module cannot be
imported, importing this module fails and so does the server's start.
"""

from __future__ import annotations

from typing import Any

import re2  # google-re2; without it the server must not start (see the module docstring)

#: Longest pattern accepted, in UTF-8 bytes (a Grafana multi-value variable of a few hundred values fits).
MAX_PATTERN_BYTES = 4096
#: RE2's memory budget for one compiled pattern (program and match-time DFA cache); compiling stops past it.
MAX_PROGRAM_BYTES = 2 * 1024 * 1024

_OPTIONS = re2.Options()
_OPTIONS.max_mem = MAX_PROGRAM_BYTES
_OPTIONS.log_errors = False  # RE2 would log each refused pattern to stderr; the caller reports it instead
_OPTIONS.never_capture = True  # only "does it match": groups are never read, so RE2 need not track them


_SYNTAX = "(patterns use RE2 syntax, as in Prometheus)"


class RegexError(ValueError):
    """A pattern RE2 does not accept, or one over the budget; ``str()`` says why in a sentence."""


class Regex:
    """A compiled pattern: ``fullmatch`` is anchored at both ends (as Prometheus does), ``search`` is not."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str, compiled: Any) -> None:
        self.pattern = pattern
        self._compiled = compiled

    def fullmatch(self, text: str) -> bool:
        # Bytes, not str: the wrapper's own encoding is strict and would raise on a lone surrogate,
        # which a label value decoded leniently can hold. RE2 reads the bytes as UTF-8 either way.
        return self._compiled.fullmatch(text.encode("utf-8", "surrogatepass")) is not None

    def search(self, text: str) -> bool:
        """Unanchored: true when the pattern matches anywhere in ``text`` (pprof's filters match this way)."""
        return self._compiled.search(text.encode("utf-8", "surrogatepass")) is not None

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"


def compile_regex(pattern: str) -> Regex:
    """Compile ``pattern`` with RE2 under the size budget, or raise :class:`RegexError` naming the problem."""
    encoded = pattern.encode("utf-8", "surrogatepass")
    if len(encoded) > MAX_PATTERN_BYTES:
        raise RegexError(f"the pattern is {len(encoded)} bytes long; at most {MAX_PATTERN_BYTES} are allowed")
    try:
        compiled = re2.compile(encoded, _OPTIONS)
    except re2.error as exc:
        raise RegexError(_sentence(exc)) from None
    return Regex(pattern, compiled)


def _sentence(exc: Exception) -> str:
    """RE2's terse error (``b'invalid perl operator: (?='``) as a sentence a user can act on."""
    raw = exc.args[0] if exc.args else ""
    detail = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if detail.startswith(("invalid perl operator: (?=", "invalid perl operator: (?!")):
        return f"lookahead ((?=...), (?!...)) is not supported {_SYNTAX}"
    if detail.startswith(("invalid perl operator: (?<=", "invalid perl operator: (?<!")):
        return f"lookbehind ((?<=...), (?<!...)) is not supported {_SYNTAX}"
    if detail.startswith("invalid escape sequence: \\") and detail[-1:].isdigit():
        return f"backreferences ({detail.rsplit(': ', 1)[1]}) are not supported {_SYNTAX}"
    if detail.startswith("pattern too large"):
        return f"the pattern is too large (its compiled form exceeds {MAX_PROGRAM_BYTES // 2**20} MiB)"
    return f"{detail} {_SYNTAX}"
