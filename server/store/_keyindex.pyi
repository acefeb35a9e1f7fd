"""Typed signature of the key index in ``_keyindex.c``; see :mod:`server.store.samplekeys` and
:mod:`server.store.lineframes`."""

from typing import TypeAlias, final

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

#: numpy's stubs do not declare the buffer protocol, so its arrays are named beside any other buffer.
Words: TypeAlias = Buffer | npt.NDArray[np.int64]

@final
class KeyIndex:
    """Ids (at least 1) by int64 key (any value, negative included): an open-addressing hash table of
    16-byte slots, doubled when it passes 70 % full, so 23 to 46 bytes a key.

    Every buffer argument is a C-contiguous buffer of 64-bit integers (a numpy ``int64`` array); anything
    else (another format, a strided array, a list) is a ``TypeError`` naming the argument.
    """

    def __init__(self) -> None: ...
    def __len__(self) -> int:
        """Keys indexed."""

    @property
    def capacity(self) -> int:
        """Slots in the table (0 until the first key or :meth:`reserve`); it doubles past 70 % full."""

    def reserve(self, size: int, /) -> None:
        """Room for ``size`` keys in all, so adding keys up to that many never grows (rehashes) the table."""

    def add(self, keys: Words, ids: Words, /, *, replace: bool = False) -> None:
        """Index each ``keys[i]`` with ``ids[i]``. ``ValueError``, with nothing added, for an id below 1, a
        key indexed already or a key given twice. With ``replace``, such a key takes the id given instead
        (the last one, if given twice): a segment table's copy from before another process's garbage
        collection can meet a hash again under the new id it was stored with since."""

    def lookup(self, keys: Words, /) -> bytes:
        """The id of each key as int64 bytes, -1 where there is none."""
