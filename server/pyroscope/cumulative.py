"""Deltas of cumulative profiles that Pyroscope's clients send as they are.

Two clients send counters that run since the process started:

* old pyroscope-go SDKs upload a heap (mutex, block) profile together with
  the previous one (``prev_profile``): the delta is their difference, with no
  state kept here;
* Alloy sends a memory profile without ``__delta__="false"`` when it did not
  subtract itself: Pyroscope then subtracts the series' previous profile on
  the server, and so does Stackyard, with :class:`PreviousProfiles`.

The difference is :func:`server.pprof.merge.delta`, the one the collector
uses for targets that cannot answer ``?seconds=``: when a counter went down
the process restarted, and the new profile is itself the delta since then.

:class:`PreviousProfiles` lives in one server process. Behind a load
balancer that spreads one client's pushes over several Stackyard replicas,
each would subtract a different previous profile: there, let the client send
deltas (current Alloy versions do, with ``__delta__="false"``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

from server.pprof import decode, encode
from server.pprof.merge import delta

#: Bytes of previous profiles (gzip, as received) kept at most; the least recently pushed series go first.
MAX_PREVIOUS_BYTES = 64 * 1024 * 1024


def delta_bytes(previous: bytes, current: bytes, max_decompressed: int) -> bytes:
    """``current - previous`` as a gzipped profile (``current`` itself after a restart)."""
    before = decode(previous, max_decompressed)
    after = decode(current, max_decompressed)
    difference = delta(before, after)
    return encode(difference if difference is not None else after)


class PreviousProfiles:
    """The last cumulative profile stored per series, within a byte budget."""

    def __init__(self, max_bytes: int = MAX_PREVIOUS_BYTES) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._last: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, series: Hashable) -> bytes | None:
        with self._lock:
            return self._last.get(series)

    def remember(self, series: Hashable, data: bytes) -> None:
        """Called once the profile is stored (or kept as the baseline): a failed write leaves the previous one."""
        with self._lock:
            old = self._last.pop(series, None)
            if old is not None:
                self._bytes -= len(old)
            if len(data) > self._max_bytes:
                return
            self._last[series] = data
            self._bytes += len(data)
            while self._bytes > self._max_bytes:
                _, dropped = self._last.popitem(last=False)
                self._bytes -= len(dropped)

    def __len__(self) -> int:
        return len(self._last)
