"""What a ``before_cursor_execute`` hook can read of a statement on the segments table, whichever path ran it."""

from __future__ import annotations

from typing import Any


def bound_kinds(statement: str, parameters: Any, context: Any) -> list[int]:
    """The ``kind`` every row of a statement on the segments table binds, as a ``before_cursor_execute`` hook
    sees it: by name when SQLAlchemy compiled it, else (SQLite's ``database.SqliteStatement``, the driver's SQL)
    from the driver's positional rows, by the column's place in the statement's column list."""
    compiled = getattr(context, "compiled_parameters", None)
    if compiled is not None:
        return [int(p["kind"]) for p in compiled if "kind" in p]
    head = statement.split("VALUES", maxsplit=1)[0] if "VALUES" in statement.upper() else ""
    if "(" not in head:
        return []
    names = [name.strip() for name in head[head.index("(") + 1 : head.rindex(")")].split(",")]
    if "kind" not in names:
        return []
    at = names.index("kind")
    rows = parameters if isinstance(parameters, list) else [parameters]
    return [int(row[at]) for row in rows]
