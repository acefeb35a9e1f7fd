"""A real HTTP webhook receiver on loopback that records what it is sent, and can answer badly on purpose.

``statuses`` is consumed one per request (then 200); ``hang_s`` makes every
request wait that long before answering, as a stuck receiver would; ``reply``
is the body of every answer; ``host`` is where it listens (``::1`` for IPv6).
Requests in absolute form (``POST http://host/path``, as a client sends them
to a proxy) are recorded with their full target in ``paths``, so the same
server can stand in for an HTTP proxy.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class WebhookServer:
    def __init__(
        self, statuses: list[int] | None = None, hang_s: float = 0.0, reply: bytes = b"", host: str = "127.0.0.1"
    ) -> None:
        self.statuses = list(statuses or [])
        self.hang_s = hang_s
        self.reply = reply
        self.received: list[Any] = []  # bodies of requests answered 2xx
        self.attempts: list[tuple[float, int]] = []  # (time, status) of every request
        self.paths: list[tuple[str, int]] = []  # (path, status) of every request
        self._lock = threading.Lock()
        server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
        self.httpd = server_class((host, 0), self._handler())
        self.httpd.daemon_threads = True
        self.port: int = self.httpd.server_address[1]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}/hook"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def bodies(self, status: str | None = None) -> list[Any]:
        """Bodies received (answered 2xx); ``status`` keeps webhook payloads of that status."""
        with self._lock:
            return [b for b in self.received if status is None or b.get("status") == status]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                if server.hang_s:
                    time.sleep(server.hang_s)
                with server._lock:
                    status = server.statuses.pop(0) if server.statuses else 200
                    server.attempts.append((time.monotonic(), status))
                    server.paths.append((self.path, status))
                    if 200 <= status < 300:
                        server.received.append(body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(server.reply)))
                    self.end_headers()
                    self.wfile.write(server.reply)
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, *_args: object) -> None:
                pass

        return Handler
