"""Hostile inputs, and a probe that throws them at a real server process while watching it.

Each input is small on the wire and huge once inflated or decoded: the
gzip-compressed protobuf of a profile made of millions of empty records, or a
goroutine dump of millions of minimal goroutines. :class:`ServerProbe`
measures what such an input costs the server that refuses it: the answer, the
time until it comes, the process's peak resident memory (``VmHWM`` in
``/proc/<pid>/status``, reset between inputs through ``clear_refs``), and the
slowest ``/healthz`` round-trip while it was being handled.

Used by tests/server/api/test_hostile_inputs.py (which asserts memory and the refusal)
and bench/hostile.py (which reports the times).
"""

from __future__ import annotations

import http.server
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import httpx

#: The issue's repro: an empty string table entry, then 134,217,696 empty samples (256 MiB inflated).
EMPTY_SAMPLES_COUNT = 134_217_696
MIB = 1024 * 1024


def _gzip_repeated(head: bytes, unit: bytes, count: int, tail: bytes = b"") -> bytes:
    """gzip of ``head + unit * count + tail``, built in slices so that nothing near the inflated size is held."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [compressor.compress(head)]
    per_slice = max(1, MIB // len(unit))
    block = unit * per_slice
    left = count
    while left >= per_slice:
        parts.append(compressor.compress(block))
        left -= per_slice
    parts.append(compressor.compress(unit * left + tail))
    parts.append(compressor.flush())
    return b"".join(parts)


def _gzip_members(head: bytes, unit: bytes, count: int, tail: bytes = b"") -> bytes:
    """The same inflated bytes as :func:`_gzip_repeated`, as concatenated gzip members (made in milliseconds).

    One member holds a mebibyte of ``unit`` and is repeated; Go's gzip reader
    and Stackyard's read concatenated members as one stream.
    """
    per_block = max(1, MIB // len(unit))
    block = zlib.compress(unit * per_block, 9, wbits=16 + zlib.MAX_WBITS) if count >= per_block else b""
    rest = zlib.compress(unit * (count % per_block) + tail, 9, wbits=16 + zlib.MAX_WBITS)
    return zlib.compress(head, 9, wbits=16 + zlib.MAX_WBITS) + block * (count // per_block) + rest


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


@cache
def empty_samples() -> bytes:
    """``b'\\x32\\x00' + b'\\x12\\x00' * 134217696``, gzipped (about 255 KiB): the issue's repro, byte for byte."""
    return _gzip_repeated(b"\x32\x00", b"\x12\x00", EMPTY_SAMPLES_COUNT)


def _fill(unit: bytes, inflated: int = 256 * MIB - 16) -> bytes:
    return _gzip_members(b"\x32\x00", unit, inflated // len(unit))


@cache
def bombs() -> dict[str, bytes]:
    """Every record type of a profile, each repeated until the input inflates to just under 256 MiB.

    Record by record, the amplification from wire bytes to decoded memory
    differs (an empty mapping is 2 bytes that become six 64-bit words); each
    is a way around a limit on samples and locations alone.
    """
    return {
        "empty samples": empty_samples(),
        "empty mappings": _fill(b"\x1a\x00"),
        "empty functions": _fill(b"\x2a\x00"),
        "locations of empty lines": _fill(b"\x22\x02\x22\x00"),
        "short strings": _fill(b"\x32\x02ab"),
        "sample types": _fill(b"\x0a\x00"),
        "one sample of 64 Mi labels": _gzip_members(b"\x32\x00\x12" + _varint(128 * MIB), b"\x1a\x00", 64 * MIB),
        "one sample of 128 Mi values": _gzip_members(
            b"\x32\x00\x12" + _varint(128 * MIB + 5) + b"\x12" + _varint(128 * MIB), b"\x01", 128 * MIB
        ),
    }


def connect_bombs(inflated: int = 32 * MIB - 64) -> dict[str, tuple[bytes, str]]:
    """Alloy-shaped Push bodies (gzip, as Content-Encoding) that inflate to ``inflated`` bytes of empty entries.

    Each entry is two bytes on the wire but a whole object once parsed: an empty
    series, or a series of empty labels, or a series of empty samples; and the
    JSON form of empty series. The value is (gzip body, Content-Type).
    """
    count = inflated // 2
    one_series = b"\x0a" + _varint(inflated) + b""  # a single series whose body is the repeated entries
    return {
        "empty series": (_gzip_members(b"", b"\x0a\x00", count), "application/proto"),
        "empty labels": (_gzip_members(one_series, b"\x0a\x00", count), "application/proto"),
        "empty samples": (_gzip_members(one_series, b"\x12\x00", count), "application/proto"),
        "JSON empty series": (_gzip_members(b'{"series":[{}', b",{}", count // 2, b"]}"), "application/json"),
    }


def long_string(size: int) -> bytes:
    """gzip of a profile whose first record is one string of ``size`` zero bytes: well-formed until it ends.

    Under the record limit (16 MiB) it passes the parser's checks, so only the
    limit on the inflated size can stop it: the classic gzip bomb.
    """
    return _gzip_members(b"\x32" + _varint(size), b"\x00" * 1024, size // 1024)


@cache
def goroutine_bomb(size: int = 32 * MIB - 1024) -> bytes:
    """A goroutine dump of minimal goroutines, each with one frame of its own: ``size`` bytes of text."""
    lines: list[bytes] = []
    total = 0
    number = 1
    while True:
        block = b"goroutine %d [select]:\nf%x()\n\tf.go:1\n\n" % (number, number)
        if total + len(block) > size:
            break
        lines.append(block)
        total += len(block)
        number += 1
    return b"".join(lines)


# --------------------------------------------------------------------------- measuring a server process


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def reset_peak_rss(pid: int) -> None:
    """Start a new high-water mark from the current resident set (Linux 4.0+: ``5 > clear_refs``)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@dataclass
class Outcome:
    status: int
    message: str
    seconds: float
    peak_rss: int
    healthz_worst: float  # the slowest /healthz round-trip while the input was handled
    healthz_during: int  # /healthz answers that came back before the server answered the input
    healthz_failures: int

    def responsive(self, grace: float = 0.5) -> bool:
        """Whether /healthz answered while the server worked on the input (trivially, if it took under ``grace``)."""
        return self.healthz_failures == 0 and (self.healthz_during > 0 or self.seconds < grace)


@dataclass
class _Healthz:
    """A thread asking ``/healthz`` every 10 ms, keeping when each answer came and the slowest round-trip."""

    url: str
    worst: float = 0.0
    answered_at: list[float] = field(default_factory=list)
    failures: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    ok = client.get(self.url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                done = time.perf_counter()
                self.worst = max(self.worst, done - started)
                if ok:
                    self.answered_at.append(done)
                else:
                    self.failures += 1
                self.stop.wait(0.01)


class ServerProbe:
    """Sends inputs to one running server process, each measured on its own."""

    def __init__(self, base_url: str, pid: int) -> None:
        self.base_url = base_url
        self.pid = pid

    def measure(self, action: Callable[[], tuple[int, str]]) -> Outcome:
        """Run ``action`` (which returns an HTTP status and a message) while watching the server."""
        time.sleep(0.2)  # let the previous input's memory go back before the new high-water mark starts
        reset_peak_rss(self.pid)
        watcher = _Healthz(self.base_url + "/healthz")
        thread = threading.Thread(target=watcher.run, daemon=True)
        thread.start()
        started = time.perf_counter()
        try:
            status, message = action()
            finished = time.perf_counter()
        finally:
            watcher.stop.set()
            thread.join(timeout=120)
        during = sum(1 for at in watcher.answered_at if started < at < finished)
        return Outcome(status, message, finished - started, peak_rss(self.pid), watcher.worst, during, watcher.failures)

    def push(
        self, body: bytes, path: str = "/api/v1/ingest", headers: dict[str, str] | None = None, **params: str
    ) -> Outcome:
        def action() -> tuple[int, str]:
            response = httpx.post(
                self.base_url + path,
                params={"service": "hostile", **params},
                content=body,
                headers=headers,
                timeout=120,
            )
            return response.status_code, response.text

        return self.measure(action)

    def scrape(self, target_url: str, kind: str, timeout: float = 120) -> Outcome:
        """Register a target serving the input and wait for its first scrape's outcome in its health."""

        def action() -> tuple[int, str]:
            created = httpx.post(
                self.base_url + "/api/v1/targets",
                json={
                    "url": target_url,
                    "service": "hostile",
                    "interval": "2s",
                    "profiles": [{"type": kind, "interval": "2s"}],
                },
                timeout=30,
            )
            assert created.status_code == 201, created.text
            target_id = created.json()["id"]
            deadline = time.monotonic() + timeout
            try:
                while time.monotonic() < deadline:
                    health = _health_of(self.base_url, target_id, kind)
                    if health is not None and health.get("last_scrape"):
                        return (200 if health.get("up") else 0), str(health.get("last_error") or "")
                    time.sleep(0.05)
            finally:
                httpx.delete(f"{self.base_url}/api/v1/targets/{target_id}", timeout=30)
            raise AssertionError(f"no scrape of {kind} within {timeout} s")

        return self.measure(action)


def _health_of(base_url: str, target_id: int, kind: str) -> dict[str, object] | None:
    for target in httpx.get(base_url + "/api/v1/targets", timeout=30).json()["targets"]:
        if target.get("id") == target_id:
            found: dict[str, object] | None = target.get("health", {}).get(kind)
            return found
    return None


@contextmanager
def serving(body: bytes) -> Iterator[str]:
    """A local HTTP server answering every GET with ``body``: a scrape target gone bad. Yields its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
