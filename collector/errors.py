"""Why a scrape failed, as one readable sentence each: what a targets page shows.

    ScrapeError              any failed scrape; ``str()`` is the sentence
    ├── ScrapeTimeout        "timeout after 18s"
    ├── HTTPStatusError      "HTTP 500: <first line of the body>"
    ├── ConnectError         "connection refused", "connection reset", ...
    ├── ResponseTooLarge     "response larger than N bytes"
    ├── InvalidProfile       "not a pprof profile: <decoder message>"
    └── TargetRefused        "refused: 169.254.169.254 is in the denied network 169.254.0.0/16"

``reason`` is a short fixed word for metrics labels; ``url`` is what was fetched
(the health a targets page shows ends with it, so a wrong path is plain to see).
"""

from __future__ import annotations


class ScrapeError(Exception):
    reason = "error"
    #: The URL whose fetch failed, set by the fetcher: health shows it beside the sentence.
    url: str | None = None


class ScrapeTimeout(ScrapeError):
    reason = "timeout"


class HTTPStatusError(ScrapeError):
    reason = "http_status"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ConnectError(ScrapeError):
    reason = "connect"


class ResponseTooLarge(ScrapeError):
    reason = "too_large"


class InvalidProfile(ScrapeError):
    reason = "invalid_profile"


class TargetRefused(ScrapeError):
    """The network policy or the redirect rules forbid this request: "refused: <why>"."""

    reason = "refused"
