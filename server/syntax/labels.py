"""Series label rules, shared by ingest, targets and selectors: Prometheus' label grammar and the store's limits.

:func:`check_labels` is the one checker of a profile's or dump's labels: the
store's limits first (counted refusals naming their setting), then the grammar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.errors import InvalidParameter, LimitExceeded

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MAX_LABEL_VALUE = 1024
#: Reserved names that are kept all the same, because Pyroscope's clients send them and its query API
#: reads them: the SDK's ``__session_id__`` (one per process run) and ``__name__`` where it names a
#: profile differently from its kind (the SDK's ``goroutines``; see server/pyroscope/profilekinds.py).
KEPT_RESERVED = frozenset({"__session_id__", "__name__"})
# What a space-separated paste of labels leaves in the first one's value: `prod version=1` from
# `env=prod version=1`. Linear: one character class, then a bounded name and "=".
_PASTED = re.compile(r"\s+([a-zA-Z_][a-zA-Z0-9_]*)=")


def pasted_hint(value: str) -> str | None:
    """What is wrong with a value that is several labels run together, or None when it is not."""
    found = _PASTED.search(value)
    if found is None:
        return None
    return f"looks like several labels separated by spaces; give {found.group(1)!r} as a label of its own"


def pasted_labels(name: str, value: str) -> str | None:
    """Why ``name=value`` looks like several labels run together, or None.

    A value is never split silently: ``env=prod version=1`` would otherwise be stored as
    ``env="prod version=1"`` and match no selector anyone writes.
    """
    hint = pasted_hint(value)
    if hint is None:
        return None
    return f"the value of {name!r} is {value!r}, which {hint} (separate labels with commas)"


@dataclass(frozen=True, slots=True)
class LabelLimits:
    """What the store accepts of one series' labels (``STACKYARD_MAX_LABELS_PER_SERIES`` and the lengths)."""

    per_series: int
    name_length: int
    value_length: int


def _check_limits(labels: dict[str, str], limits: LabelLimits) -> None:
    """Refuse labels past a store limit, as :class:`LimitExceeded` naming the limit and its setting."""
    if len(labels) > limits.per_series:
        raise LimitExceeded(
            "labels_per_series",
            f"label: {len(labels)} labels exceed the limit of {limits.per_series} per series (max_labels_per_series)",
        )
    for name, value in labels.items():
        if len(name) > limits.name_length:
            raise LimitExceeded(
                "label_name_length",
                f"label: the name {name[:64]!r}... is {len(name)} characters, over the limit of "
                f"{limits.name_length} (max_label_name_length)",
            )
        if len(value) > limits.value_length:
            raise LimitExceeded(
                "label_value_length",
                f"label: the value of {name!r} is {len(value)} characters, over the limit of "
                f"{limits.value_length} (max_label_value_length)",
            )


def check_labels(labels: dict[str, str], parameter: str = "label", limits: LabelLimits | None = None) -> dict[str, str]:
    """Check a series' labels: ``limits`` (the store's, when given) first, then the grammar; ``service`` is required.

    Without ``limits`` a value may be :data:`MAX_LABEL_VALUE` characters long; with them, ``limits.value_length``.
    """
    if limits is not None:
        _check_limits(labels, limits)
    max_value = limits.value_length if limits is not None else MAX_LABEL_VALUE
    for name, value in labels.items():
        if not LABEL_NAME.fullmatch(name):
            raise InvalidParameter(
                parameter, f"{name!r} is not a valid label name (letters, digits and _; not starting with a digit)"
            )
        if name.startswith("__") and name not in KEPT_RESERVED:
            raise InvalidParameter(parameter, f"label names starting with __ are reserved: {name!r}")
        if len(value) > max_value:
            raise InvalidParameter(parameter, f"the value of {name!r} is longer than {max_value} characters")
        if "\0" in value:
            # PostgreSQL cannot store NUL in text, and a series label is matched as sent: refused, not altered.
            raise InvalidParameter(parameter, f"the value of {name!r} contains a NUL character")
    if not labels.get("service"):
        raise InvalidParameter("service", "every profile needs a service name")
    return labels


def parse_label_pairs(pairs: list[str]) -> dict[str, str]:
    """``["env=prod", "region=eu"]`` to a dict; the value may itself contain ``=``."""
    labels: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise InvalidParameter("label", f"{pair!r} is not KEY=VALUE")
        pasted = pasted_labels(name.strip(), value)
        if pasted:
            raise InvalidParameter("label", f"{pasted}; one label per label= parameter")
        labels[name.strip()] = value
    return labels
