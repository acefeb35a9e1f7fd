"""Client-side deltas: a target that refuses ``?seconds=`` is scraped cumulatively and subtracted exactly."""

from __future__ import annotations

import asyncio
import gzip
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry

from collector.delta import DeltaTracker
from collector.fetch import Fetcher
from collector.manager import ScrapeManager
from collector.metrics import CollectorMetrics
from collector.sinks import ScrapedProfile
from server.pprof import decode, encode, profile_pb2
from server.pprof.merge import delta, scale
from server.scrape.spec import ProfileSpec, TargetSpec
from tests.support.godemo import running
from tests.support.tools import DATA


class NoDeltaProxy:
    """Forwards to a real Go demo but answers 400 to any ``seconds=`` query, like a target without delta support."""

    def __init__(self, upstream: str) -> None:
        self.served: list[bytes] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                if "seconds=" in self.path:
                    body = b"seconds not supported\n"
                    self.send_response(400)
                else:
                    with urllib.request.urlopen(upstream + self.path, timeout=10) as response:
                        body = response.read()
                    proxy.served.append(body)
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class ListSink:
    def __init__(self) -> None:
        self.profiles: list[ScrapedProfile] = []

    async def send(self, profile: ScrapedProfile) -> None:
        self.profiles.append(profile)

    async def close(self, deadline_s: float) -> None:
        return None


def _total(data: bytes, index: int) -> int:
    message = profile_pb2.Profile()
    message.ParseFromString(gzip.decompress(data))
    return sum(sample.value[index] for sample in message.sample)


def test_client_side_deltas_add_up_exactly() -> None:
    with running("-leak-rate", "0") as demo:
        proxy = NoDeltaProxy(demo)
        try:
            target = TargetSpec(proxy.url, "nodelta", interval_s=1.0, profiles=(ProfileSpec("allocs"),))
            sink = ListSink()
            manager = ScrapeManager([lambda: [target]], sink, Fetcher(), CollectorMetrics(CollectorRegistry()))

            async def scenario() -> None:
                await manager.start()
                await asyncio.sleep(6.5)
                await manager.stop(5)

            asyncio.run(scenario())
        finally:
            proxy.close()
    assert len(proxy.served) >= 5
    assert len(sink.profiles) == len(proxy.served) - 1, "the first cumulative scrape is only a baseline"
    for index in (0, 1):  # alloc_objects, alloc_space: cumulative counters
        deltas = [_total(p.data, index) for p in sink.profiles]
        assert min(deltas) >= 0
        assert sum(deltas) == _total(proxy.served[-1], index) - _total(proxy.served[0], index)


def test_a_restart_is_not_a_negative_delta() -> None:
    """A counter that went down means the process restarted: the new snapshot is the delta since then."""
    snapshot = (DATA / "allocs.pb.gz").read_bytes()
    bigger = encode(scale(decode(snapshot), 3.0))  # what the process had counted before it restarted
    tracker = DeltaTracker(max_decompressed=64 * 1024 * 1024)
    assert tracker.next("t", "allocs", bigger, 1) is None  # baseline
    after_restart = tracker.next("t", "allocs", snapshot, 2)
    assert after_restart is not None
    assert _total(after_restart, 0) == _total(snapshot, 0)
    assert delta(decode(bigger), decode(snapshot)) is None
    # And a normal step forward is the plain difference.
    forward = tracker.next("t", "allocs", bigger, 3)
    assert forward is not None
    assert _total(forward, 0) == _total(bigger, 0) - _total(snapshot, 0)
