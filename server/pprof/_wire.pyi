"""Typed signature of the C decoder in ``_wire.c``; see :mod:`server.pprof.columns`."""

from typing import final

from typing_extensions import Buffer

@final
class Column:
    """One decoded column: a read-only buffer of packed little-endian 64-bit words."""

    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

class LimitError(ValueError):
    """``args`` are (text, name, limit); name is one of ``profile_samples``, ``profile_locations``,
    ``profile_sample_types``, ``profile_decoded_bytes``, ``profile_record_bytes``."""

@final
class Parser:
    """An incremental decoder of one profile; every limit not given is unlimited."""

    def __init__(
        self, *, samples: int = ..., locations: int = ..., sample_types: int = ..., memory: int = ..., record: int = ...
    ) -> None: ...
    @property
    def used(self) -> int:
        """Bytes of the memory budget used so far."""

    def feed(self, data: Buffer, /) -> None:
        """The next bytes of the (not gzipped) profile.

        ``ValueError`` on malformed data, :class:`LimitError` past a limit.
        """

    def finish(self) -> dict[str, object]:
        """The end of the input: the columns, as :func:`parse` returns them; the parser is spent after."""

def parse(
    raw: Buffer,
    /,
    *,
    samples: int = ...,
    locations: int = ...,
    sample_types: int = ...,
    memory: int = ...,
    record: int = ...,
) -> dict[str, object]:
    """Decode raw (not gzipped) pprof protobuf bytes into flat columns.

    ``raw`` is any C-contiguous buffer (``bytes``, ``bytearray``, ``memoryview``...).
    ``"strings"`` is a ``list[str]``; every other column is a :class:`Column`; the remaining
    singular fields are ``int``, and ``"has_period_type"`` is a ``bool``. Raises ``ValueError``
    on malformed wire data and :class:`LimitError` at the first record past a limit.
    """

def valid(*arrays: Buffer) -> bool:
    """True when the columns (arrays of 64-bit words, in the order :mod:`server.pprof.kernels` passes them)
    surely pass validation; False: the full check must decide."""

def sample_hashes(*arrays: Buffer) -> bytes:
    """Every sample's identity hash, one host-order word each (see :mod:`server.pprof.kernels`)."""

def label_runs(*arrays: Buffer) -> tuple[bytes, bytes] | None:
    """Samples grouped by equal label entries: (groups, firsts) as int64 words, or None past the probe budget
    (see :mod:`server.pprof.kernels`)."""

def expand_frames(*arrays: Buffer) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """The frames of chosen samples: (entries, offsets, entry_functions, entry_lines, entry_inlined) as int64
    words (see :mod:`server.pprof.kernels`)."""

def pack_frame_values(entry_values: Buffer, entries: Buffer, offsets: Buffer, which: Buffer, /) -> tuple[int, bytes]:
    """A value per frame of chosen samples, little-endian at the narrowest width that holds them all: (width,
    values); width 1, 2 or 4 unsigned, else 8 signed (see :mod:`server.pprof.kernels`)."""
