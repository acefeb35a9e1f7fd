"""Structured logging: one JSON object per line, with the event's fields as keys.

Library code logs ``log.info("scrape", extra={"target": ..., "outcome": ...})``;
the formatter turns the ``extra`` fields into keys so log pipelines can filter
on them without parsing prose.

Every line passes :class:`RedactCredentials` first: a password written into a
target or webhook URL (``http://user:secret@host/``) never reaches the log,
whichever module (or library) put the URL in its message or fields.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from server.network.redact import redact_credentials

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                event[key] = value
        if record.exc_info:
            event["error"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)


class RedactCredentials(logging.Filter):
    """Redacts URL credentials in a record's message and its string fields (a filter never drops a line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: leave it to the handler, which reports it as a logging error
            return True
        redacted = redact_credentials(message)
        if redacted is not message:
            record.msg, record.args = redacted, None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                record.__dict__[key] = redact_credentials(value)
        return True


def configure(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactCredentials())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Alembic narrates every migration step at INFO; only its warnings matter to an operator.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    # httpx logs every request at INFO; scrapes are logged once each by the collector instead.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
