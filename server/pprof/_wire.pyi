"""Typed signature of the C decoder in ``_wire.c``; see :mod:`server.pprof.columns`."""

from typing_extensions import Buffer

def parse(raw: Buffer, /) -> dict[str, object]:
    """Decode raw (not gzipped) pprof protobuf bytes into flat columns.

    ``raw`` is any C-contiguous buffer (``bytes``, ``bytearray``, ``memoryview``...).
    ``"strings"`` is a ``list[str]``; every other column is ``bytes`` of packed
    little-endian 64-bit words; the remaining singular fields are ``int``, and
    ``"has_period_type"`` is a ``bool``. Raises ``ValueError`` on malformed wire data.
    """
