"""How many message objects a request would become, counted on the wire before it is parsed.

A protobuf parse turns every submessage into an object: 32 MiB of empty
``series`` entries (two bytes each) are 16 million objects and about 700 MB
of memory, whatever the body's size limit says. So a request whose
submessages could be that many is refused before the parse, by walking its
wire format with the message's descriptor: each field that holds a message
is counted and walked into, strings, bytes and numbers are skipped by their
length. The walk stops at the first element past the budget, so a refusal
costs at most ``budget`` steps; an honest request (a few series, each a few
labels and profiles) costs a few hundred.

The walk is only a count: the parse that follows still checks the bytes.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor


class TooManyElements(Exception):
    """The request holds more submessages than its budget."""


class Malformed(Exception):
    """The bytes are not a protobuf message (the parse would refuse them too)."""


_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            break
    raise Malformed("a varint runs past its message or past 10 bytes")


def count_elements(descriptor: Descriptor | Any, data: bytes, budget: int) -> int:
    """The number of submessages in ``data`` (a serialized ``descriptor``); :class:`TooManyElements` past ``budget``."""
    counted = 0
    stack: list[tuple[Descriptor, int, int]] = [(descriptor, 0, len(data))]
    while stack:
        message, pos, end = stack.pop()
        fields = message.fields_by_number
        while pos < end:
            tag, pos = _varint(data, pos, end)
            number, wire = tag >> 3, tag & 7
            if wire == _VARINT:
                _, pos = _varint(data, pos, end)
            elif wire == _I64:
                pos += 8
            elif wire == _I32:
                pos += 4
            elif wire == _LEN:
                length, pos = _varint(data, pos, end)
                field = fields.get(number)
                if field is not None and field.message_type is not None:
                    counted += 1
                    if counted > budget:
                        raise TooManyElements(f"more than {budget} entries")
                    stack.append((field.message_type, pos, min(pos + length, end)))
                pos += length
            else:
                raise Malformed(f"wire type {wire} of field {number} is not used by this message")
            if pos > end:
                raise Malformed("a field runs past the end of its message")
    return counted
