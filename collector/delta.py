"""Client-side deltas for cumulative profiles, when a target cannot answer ``?seconds=N``.

Go's ``net/http/pprof`` computes allocs, mutex and block deltas itself when
asked with ``seconds``; a target that refuses (an old Go, a proxy) is scraped
for its cumulative profile instead and the previous scrape is subtracted here.
A counter that went down means the process restarted: then the new cumulative
profile is itself the delta since the restart, and no negative is ever stored.
"""

from __future__ import annotations

import threading

from server.pprof import DecodeLimits, Profile, decode, encode
from server.pprof.merge import delta


class DeltaTracker:
    def __init__(self, max_decompressed: int, limits: DecodeLimits | None = None) -> None:
        self._max = max_decompressed
        self._limits = limits
        self._previous: dict[tuple[str, str], Profile] = {}
        self._client_side: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def client_side(self, target_key: str, kind: str) -> bool:
        return (target_key, kind) in self._client_side

    def fall_back(self, target_key: str, kind: str) -> None:
        self._client_side.add((target_key, kind))

    def forget(self, target_key: str) -> None:
        with self._lock:
            for key in [k for k in self._previous if k[0] == target_key]:
                del self._previous[key]
            self._client_side = {k for k in self._client_side if k[0] != target_key}

    def next(self, target_key: str, kind: str, data: bytes, time_ns: int) -> bytes | None:
        """The delta since the previous cumulative scrape, or ``None`` for the first one (a baseline).

        Decoding errors propagate (the caller records them as the target's error).
        """
        current = decode(data, self._max, self._limits)
        if not current.time_nanos:
            current.time_nanos = time_ns
        with self._lock:
            previous = self._previous.get((target_key, kind))
            self._previous[(target_key, kind)] = current
        if previous is None:
            return None
        result = delta(previous, current)
        return encode(result if result is not None else current)
