"""Strict pydantic models for config sections, and their errors in words a YAML user reads.

Every section's boundary model derives from :class:`StrictModel`;
:func:`validate` runs one and turns each pydantic error into a problem at its
key's line: "unknown key (did you mean 'scrape_interval'?)", "expected a
list, got a mapping", never Python's type names.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import ErrorDetails

from server.config.problems import KeyPath, Source


class StrictModel(BaseModel):
    """Strict because YAML already typed the values: ``enabled: "no"`` is a mistake, not a string to coerce."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        """``key:`` with nothing after it is YAML null; Prometheus reads it as "not set", and so do we."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


def describe_value(value: Any) -> str:
    """Values as a YAML user would name them, not Python's type names."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, date):
        return f"date {value.isoformat()} (quote it to make it a string)"
    return type(value).__name__


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``| None`` so the model class underneath can be found."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin is Union or origin is types.UnionType:
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _known_keys(root: Any, loc: KeyPath) -> list[str]:
    """The keys allowed where ``loc`` points, to suggest the one a typo meant."""
    tp = _unwrap(root)
    for part in loc:
        origin = get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            info = tp.model_fields.get(str(part))
            if info is None:
                return []
            tp = _unwrap(info.annotation)
        elif origin is list:
            tp = _unwrap(get_args(tp)[0])
        elif origin is dict:
            tp = _unwrap(get_args(tp)[1])
        else:
            return []
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _error_message(error: ErrorDetails, root: Any) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        loc = error["loc"]
        close = difflib.get_close_matches(str(loc[-1]), _known_keys(root, loc[:-1]), n=1)
        return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "missing":
        return "required, but missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping, got {describe_value(value)}"
    if kind == "list_type":
        return f"expected a list, got {describe_value(value)}"
    if kind == "string_type":
        return f"expected a string, got {describe_value(value)}"
    if kind == "bool_type":
        return f"expected true or false, got {describe_value(value)}"
    if kind in ("float_type", "int_type"):
        return f"expected a number, got {describe_value(value)}"
    if kind == "invalid_key":
        return f"keys must be strings, got {describe_value(value)}"
    if kind == "literal_error":
        return (
            f"expected {error.get('ctx', {}).get('expected', 'one of the allowed values')}, got {describe_value(value)}"
        )
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    return error["msg"]


def validate(adapter: Callable[[Any], Any], root: Any, data: Any, src: Source) -> Any:
    try:
        return adapter(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = tuple(p for p in error["loc"] if p != "[key]")
            src.add(loc, _error_message(error, root))
        src.raise_if_any()
        raise  # unreachable: a ValidationError always has errors
