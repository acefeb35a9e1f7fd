"""Errors the service raises on bad requests (and a few the store answers); the API turns each into JSON.

    StackyardError              (400 unless a subclass says otherwise)
    ├── InvalidParameter        a query parameter or field is wrong; names it
    │   ├── SelectorError       a selector that does not parse; points at the character
    │   ├── TimeRangeError      a time that does not parse, or from after to
    │   │   └── TooOld          a profile's time older than the raw retention; ``option`` names the fix
    │   └── InvalidTarget       (422) a scrape target that cannot be scraped (bad URL, scheme, labels)
    ├── NotFound                (404) no such profile, series or target
    ├── PayloadTooLarge         (413) a body or decompressed profile past its limit
    ├── TooExpensive            (422) a query that would read more than the limits allow
    │   └── ValueOverflow       (422) sums past the 64-bit range (what is selected adds up to too much)
    ├── LimitExceeded           (400, 413 or 422) a store limit (labels, series per service, profile size);
    │                           ``limit`` names it for stackyard_limit_rejections_total
    ├── Conflict                (409) an idempotency key reused for a different profile
    ├── IdsExhausted            (507) the stack tree has handed out every node id it can hold
    └── Unavailable             (503) the store cannot take work right now; retry later
        └── DatabaseUnavailable the database cannot be reached (yet)

Profile decoding errors come from :mod:`server.pprof.errors` and are mapped
alongside these (400, and 413 for the decompressed-size limit).
"""

from __future__ import annotations


class StackyardError(Exception):
    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameter(StackyardError):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


class SelectorError(InvalidParameter):
    def __init__(self, selector: str, position: int, message: str, parameter: str = "query") -> None:
        pointer = f"{selector}\n{' ' * position}^"
        super().__init__(parameter, f"{message} at character {position + 1} of the selector\n{pointer}")
        self.position = position


class TimeRangeError(InvalidParameter):
    pass


class TooOld(TimeRangeError):
    """A profile stamped before the raw retention: its hour may already be rolled up from deleted profiles.

    The message names how to store it anyway (a later time): ``time=`` for the API, which
    ``stackyard ingest`` (a client of the API) shows as its ``--time`` option.
    """

    def __init__(self, when: str, retention: str, option: str = "time=") -> None:
        super().__init__(
            "time",
            f"{when} is older than the raw retention ({retention}); to store it, give it a later time "
            f"with {option} (now, RFC 3339 or Unix seconds)",
        )
        self.when = when
        self.retention = retention


class InvalidTarget(InvalidParameter):
    status_code = 422


class NotFound(StackyardError):
    status_code = 404


class PayloadTooLarge(StackyardError):
    status_code = 413


class TooExpensive(StackyardError):
    status_code = 422


class ValueOverflow(TooExpensive):
    """What a query selects adds up past what 64-bit integers hold: refused rather than shown wrapped."""


class LimitExceeded(StackyardError):
    def __init__(self, limit: str, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.limit = limit
        self.status_code = status_code


class Conflict(StackyardError):
    status_code = 409


class IdsExhausted(StackyardError):
    """The stack tree has handed out every node id it can hold (ids are 32-bit; a collection gives back the gaps
    below the highest, not the live nodes' own), or the function table every function id (they are the tree's
    frames: below 2**31, never renumbered).

    Not the client's mistake and not passing: a profile whose stacks and functions are all known is still stored,
    one that brings new ones is refused whole: no row, function, node or key of it is stored. 507 (Insufficient
    Storage) says the server cannot store it; retrying does not help until an operator acts (docs/operations.md)."""

    status_code = 507


class Unavailable(StackyardError):
    """The store cannot take work right now: clients and the in-process collector retry later."""

    status_code = 503

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or reason)
        self.reason = reason


class Renumbered(Unavailable):
    """Garbage collection renumbered the stack tree's nodes while a request read them (docs/storage.md).

    The process's caches hold the old numbering, the database the new one: an answer made of both could put
    values under the wrong functions, so the request is refused instead, and the caches are refreshed before
    the next. It happens at most once a renumbering, which comes weeks apart; a retry answers."""

    def __init__(self) -> None:
        super().__init__(
            "stack nodes renumbered",
            "garbage collection renumbered the stack tree's nodes while this request read them: retry it",
        )


class DatabaseUnavailable(Unavailable):
    def __init__(self, reason: str) -> None:
        super().__init__(reason, f"database unavailable: {reason}")
