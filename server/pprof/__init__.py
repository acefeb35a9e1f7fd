"""The pprof wire format: decode, validate, encode, merge, scale and subtract.

Everything here is a pure function over bytes and the dataclasses in
:mod:`server.pprof.model`; nothing performs I/O or imports the rest of the
project, so the format code can be tested (and fuzzed) on its own.
"""

from server.pprof.decode import decode, decompress
from server.pprof.encode import encode
from server.pprof.errors import (
    DecodeLimitError,
    DecompressError,
    MalformedProfileError,
    ParseError,
    ProfileError,
    ProfileTooLargeError,
)
from server.pprof.limits import DecodeLimits
from server.pprof.model import Function, Line, Location, Profile, Sample, ValueType

__all__ = [
    "DecodeLimitError",
    "DecodeLimits",
    "DecompressError",
    "Function",
    "Line",
    "Location",
    "MalformedProfileError",
    "ParseError",
    "Profile",
    "ProfileError",
    "ProfileTooLargeError",
    "Sample",
    "ValueType",
    "decode",
    "decompress",
    "encode",
]
