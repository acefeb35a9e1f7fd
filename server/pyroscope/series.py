"""Series labels as Pyroscope's clients send them, in Stackyard's terms.

The pyroscope-go SDK names its series in the ``name`` parameter of
``POST /ingest``: ``app{k=v,k2=v2}``, the application name and its tags,
without quotes. Alloy sends label pairs. Either way:

* the application name, or ``service_name``, becomes Stackyard's ``service``;
* ``__name__`` (``process_cpu``, ``memory``, ``goroutines``...) and
  ``__delta__`` describe the profile, and are read here, not stored as such
  (see :mod:`server.pyroscope.profilekinds` for what they decide);
* ``__session_id__`` (the SDK's, one per process run) is kept, as Pyroscope
  keeps it; every other name starting with ``__`` is dropped, as Pyroscope
  drops it;
* a ``.`` in a label name (OpenTelemetry's ``process.executable.name``)
  becomes ``_``, since Stackyard's label names follow Prometheus' grammar.

Every other check (the grammar, lengths, counts) is the store's, the same as
for ``/api/v1/ingest``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from server.errors import InvalidParameter

SERVICE = "service_name"
STORE_SERVICE = "service"
NAME = "__name__"
DELTA = "__delta__"
SESSION = "__session_id__"
#: Longest application name, as ``/api/v1/ingest``'s ``service``.
MAX_APP_NAME = 256
#: Longest ``name`` parameter: an application name and tags within the store's label limits fit easily.
MAX_APP_KEY = 64 * 1024


@dataclass(frozen=True, slots=True)
class SeriesLabels:
    """A series in Stackyard's terms, and what its Pyroscope-only labels said."""

    labels: dict[str, str]
    name: str | None = None
    delta: str | None = None


def translate(pairs: Iterable[tuple[str, str]], parameter: str) -> SeriesLabels:
    """Pyroscope label pairs (``service_name`` among them) to Stackyard series labels."""
    labels: dict[str, str] = {}
    name: str | None = None
    delta: str | None = None
    seen: set[str] = set()
    for raw_name, value in pairs:
        if raw_name in seen:
            raise InvalidParameter(parameter, f"the label {raw_name!r} is given twice")
        seen.add(raw_name)
        if raw_name == NAME:
            name = value
            continue
        if raw_name == DELTA:
            delta = value
            continue
        if raw_name.startswith("__") and raw_name != SESSION:
            continue
        stored = STORE_SERVICE if raw_name == SERVICE else raw_name.replace(".", "_")
        if stored in labels:
            raise InvalidParameter(parameter, f"{raw_name!r} would be stored as {stored!r}, which another label is")
        if value:  # an empty value means no label, as in Prometheus
            labels[stored] = value
    if not labels.get(STORE_SERVICE):
        raise InvalidParameter(parameter, f"no {SERVICE} label: every profile needs a service name")
    return SeriesLabels(labels, name, delta)


def parse_app_key(text: str, parameter: str = "name") -> SeriesLabels:
    """``app{k=v,k2=v2}`` (tags optional) to series labels, the application name as the service.

    One pass over the text, no regular expression: the time is linear in its length, which is bounded.
    """
    if len(text) > MAX_APP_KEY:
        raise InvalidParameter(parameter, f"longer than {MAX_APP_KEY} characters")
    app, brace, rest = text.partition("{")
    app = app.strip()
    if not app:
        raise InvalidParameter(parameter, f"{_shown(text)} has no application name (expected app{{key=value,...}})")
    if len(app) > MAX_APP_NAME:
        raise InvalidParameter(parameter, f"the application name is longer than {MAX_APP_NAME} characters")
    if not app.isprintable() or "}" in app:
        raise InvalidParameter(parameter, f"{_shown(app)} is not an application name (printable characters, no braces)")
    pairs: list[tuple[str, str]] = []
    if brace:
        if not rest.endswith("}"):
            raise InvalidParameter(parameter, f"{_shown(text)} does not end with }} (expected app{{key=value,...}})")
        body = rest[:-1]
        if "{" in body or "}" in body:
            raise InvalidParameter(parameter, f"{_shown(text)} has a brace inside its tags")
        for item in body.split(","):
            if not item.strip():
                continue
            key, equals, value = item.partition("=")
            key = key.strip()
            if not equals or not key:
                raise InvalidParameter(parameter, f"the tag {_shown(item.strip())} is not key=value")
            if key in (SERVICE, STORE_SERVICE):
                raise InvalidParameter(parameter, f"the tag {key!r} would replace the application name; rename it")
            pairs.append((key, value.strip()))
    return translate([(SERVICE, app), *pairs], parameter)


def _shown(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
