"""A misbehaving pprof target on loopback: the faults real targets produce, served on purpose.

Each path prefix is one behaviour; a test registers ``http://127.0.0.1:PORT/<behaviour>``
as a target with ``path_prefix=/debug/pprof`` so the collector requests
``/<behaviour>/debug/pprof/heap`` and so on. ``healthy`` serves a real capture.
Only what a real Go process cannot be made to do lives here (a gzip bomb,
a reset in the middle of a body).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.hostile import long_string
from tests.support.tools import DATA

GOOD = (DATA / "heap.pb.gz").read_bytes()
BOMB = long_string(12 * 1024 * 1024)  # well-formed until it passes the 4 MiB the fault tests allow


class FaultServer:
    def __init__(self) -> None:
        self.down = False  # "vanish": refuse service while set
        self.hits: dict[str, int] = {}
        self.flaky_broken = True
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, behaviour: str) -> str:
        return f"http://127.0.0.1:{self.port}/{behaviour}"

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def _send(self, status: int, body: bytes, content_length: int | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                behaviour = self.path.strip("/").split("/", 1)[0]
                server.hits[behaviour] = server.hits.get(behaviour, 0) + 1
                if behaviour == "healthy" or behaviour.startswith("healthy-"):  # healthy-N: one of many targets
                    self._send(200, GOOD)
                elif behaviour == "slow":
                    time.sleep(30)
                    self._send(200, GOOD)
                elif behaviour == "error500":
                    self._send(500, b"internal failure: profiler exploded\n")
                elif behaviour == "garbage":
                    self._send(200, b"<html>this is a login page, not a profile</html>")
                elif behaviour == "truncated":
                    self._send(200, GOOD[: len(GOOD) // 2])
                elif behaviour == "bomb":
                    self._send(200, BOMB)
                elif behaviour == "empty":
                    self._send(200, b"")
                elif behaviour == "reset":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(GOOD)))
                    self.end_headers()
                    self.wfile.write(GOOD[:100])
                    self.wfile.flush()
                    # SO_LINGER 0 makes close() send RST instead of FIN: a reset mid-body.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                elif behaviour == "flaky":
                    if server.flaky_broken:
                        self._send(503, b"warming up\n")
                    else:
                        self._send(200, GOOD)
                else:
                    self._send(404, b"no such behaviour\n")

        return Handler
