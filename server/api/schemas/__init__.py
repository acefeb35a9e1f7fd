"""The API's JSON shapes: one module per router, so ``/openapi.json`` describes every answer.

Routers turn the query layer's domain objects into these models (each model's
``of`` says how). Conventions, each for a measured reason:

- Answers that can be large (flame graphs, top tables, diffs, trends, profile
  lists) are built with ``model_construct``: their values come from our own
  code, and validating them again would cost as much as writing the JSON.
  Small answers are validated as usual.
- Items of long lists are ``TypedDict`` shapes: a dict per row, where a model
  per row costs about ten times as much to build.
- Numbers that are integers when whole and floats under ``avg`` are
  :data:`Number`: a JSON number to the schema, and no type to pydantic's
  serializer, for which a union ``int | float`` costs two to three times as
  much as writing each value as it is. Integers stay integers (exact past 2**53).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import WithJsonSchema

#: A JSON number written as it is: an ``int`` stays an integer, a ``float`` a float (see the module's docstring).
Number = Annotated[Any, WithJsonSchema({"type": "number"})]
