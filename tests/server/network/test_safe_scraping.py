"""Safe scraping: only http(s), no redirects to other hosts, networks checked after resolution, size limits.

The servers here are real loopback HTTP servers, the names are resolved by
the real resolver (``localhost``), and the deny lists are the real setting
values: 127.0.0.0/8 is put on the deny list in a test to stand in for the
metadata service, which a test machine cannot reach.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from collector.errors import ResponseTooLarge, TargetRefused
from collector.fetch import Fetcher, FetchLimits
from collector.health import HealthState
from collector.manager import ScrapeManager
from collector.metrics import CollectorMetrics
from server.app import create_app
from server.errors import InvalidTarget
from server.network.policy import NetworkPolicy
from server.scrape.spec import ProfileSpec, TargetSpec, check_target
from server.settings import Settings
from server.store.repository import Store
from stackyard.ingestsink import InProcessSink
from tests.conftest import TEST_RETENTION
from tests.support.tools import DATA

GOOD = (DATA / "heap.pb.gz").read_bytes()
LOOPBACK_DENIED = NetworkPolicy(deny=["127.0.0.0/8", "::1/128"])


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class RedirectingServer:
    """``/good`` serves a real heap profile; ``/to?url=X`` redirects to X; ``/loop`` redirects to itself.

    It listens on 127.0.0.1, or on ::1 with ``family_v6``.
    """

    def __init__(self, family_v6: bool = False) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                if self.path.startswith("/good"):
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(GOOD)))
                    self.end_headers()
                    self.wfile.write(GOOD)
                elif self.path.startswith("/to?url="):
                    self.send_response(302)
                    self.send_header("Location", self.path.removeprefix("/to?url="))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path.startswith("/loop"):
                    self.send_response(307)
                    self.send_header("Location", "/loop")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        self.httpd = _IPv6Server(("::1", 0), Handler) if family_v6 else ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://[::1]:{self.port}" if family_v6 else f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[RedirectingServer]:
    running = RedirectingServer()
    yield running
    running.close()


def fetch(url: str, policy: NetworkPolicy | None = None, **target: object) -> bytes:
    async def run() -> bytes:
        fetcher = Fetcher(FetchLimits(max_redirects=3), policy=policy)
        try:
            spec = TargetSpec(url=url, service="s", **target)  # type: ignore[arg-type]
            return await fetcher.get(spec, url, 10)
        finally:
            await fetcher.close()

    return asyncio.run(run())


# ---------------------------------------------------------------- registration


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/", "169.254.169.254 is in the denied network 169.254.0.0/16"),
        ("http://169.254.169.254:80/latest", "169.254.169.254 is in the denied network 169.254.0.0/16"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254 is in the denied network fd00:ec2::254/128"),
        ("http://100.100.100.200/", "100.100.100.200 is in the denied network 100.100.100.200/32"),
        ("http://[fe80::1]:6060", "fe80::1 is in the denied network fe80::/10"),
        ("http://[::ffff:169.254.169.254]/", "169.254.169.254 is in the denied network 169.254.0.0/16"),
        ("http://2852039166/", "169.254.169.254 is in the denied network 169.254.0.0/16"),
        ("http://0xa9fea9fe:8080/", "169.254.169.254 is in the denied network 169.254.0.0/16"),
    ],
)
def test_registering_a_denied_address_is_422(client: TestClient, url: str, reason: str) -> None:
    response = client.post("/api/v1/targets", json={"url": url, "service": "s"})
    assert response.status_code == 422
    assert response.json()["error"] == f"url: refused: {reason}"


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "gopher://127.0.0.1:70/"])
def test_only_http_and_https(client: TestClient, url: str) -> None:
    response = client.post("/api/v1/targets", json={"url": url, "service": "s"})
    assert response.status_code == 422 and "use http or https" in response.json()["error"]


def test_names_pass_registration_and_are_checked_when_resolved() -> None:
    # A name is not refused when registered: what it resolves to can change, so it is checked at connect time.
    target = TargetSpec(url="http://localhost:6060", service="s")
    assert check_target(target, LOOPBACK_DENIED) is target
    with pytest.raises(InvalidTarget, match=r"refused: 127\.0\.0\.1 is in the denied network 127\.0\.0\.0/8"):
        check_target(TargetSpec(url="http://127.0.0.1:6060", service="s"), LOOPBACK_DENIED)


def test_allow_list_restricts_to_its_networks(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, scrape_allow_networks=["10.0.0.0/8"])
    with TestClient(create_app(settings)) as client:
        refused = client.post("/api/v1/targets", json={"url": "http://192.168.1.5:6060", "service": "s"})
        assert refused.status_code == 422
        assert refused.json()["error"] == "url: refused: 192.168.1.5 is outside the allowed networks"
        assert client.post("/api/v1/targets", json={"url": "http://10.1.2.3:6060", "service": "s"}).status_code == 201


def test_per_target_response_limit_round_trips(client: TestClient) -> None:
    created = client.post(
        "/api/v1/targets", json={"url": "http://127.0.0.1:6060", "service": "s", "max_response_bytes": 4096}
    )
    assert created.status_code == 201 and created.json()["max_response_bytes"] == 4096
    target_id = created.json()["id"]
    assert client.get(f"/api/v1/targets/{target_id}").json()["max_response_bytes"] == 4096
    patched = client.patch(f"/api/v1/targets/{target_id}", json={"max_response_bytes": 2**40})
    assert patched.status_code == 422 and "max_response_bytes" in patched.json()["error"]


# ---------------------------------------------------------------- connect time


def test_metadata_address_is_refused_without_connecting() -> None:
    with pytest.raises(TargetRefused, match=r"^refused: 169.254.169.254 is in the denied network 169.254.0.0/16$"):
        fetch("http://169.254.169.254/latest/meta-data/")
    with pytest.raises(TargetRefused, match=r"^refused: 169.254.169.254 is in the denied network"):
        fetch("http://2852039166/latest/meta-data/")


def test_a_name_resolving_to_a_denied_network_is_refused(server: RedirectingServer) -> None:
    url = f"http://localhost:{server.port}/good"
    expected = r"^refused: localhost resolves to (127\.0\.0\.1|::1), which is in the denied network"
    with pytest.raises(TargetRefused, match=expected):
        fetch(url, LOOPBACK_DENIED)
    assert fetch(url) == GOOD  # the same name under the default policy scrapes


def test_redirect_to_a_denied_address_is_refused(server: RedirectingServer) -> None:
    with pytest.raises(TargetRefused, match=r"^refused: redirect to another host \(169.254.169.254\) not followed$"):
        fetch(f"{server.base}/to?url=http://169.254.169.254/latest/meta-data/iam/")


def test_redirect_to_another_host_is_refused(server: RedirectingServer) -> None:
    # localhost is the same machine, but not the same host as far as the target's URL says.
    with pytest.raises(TargetRefused, match=r"^refused: redirect to another host \(localhost\) not followed$"):
        fetch(f"{server.base}/to?url=http://localhost:{server.port}/good")
    with pytest.raises(TargetRefused, match=r"^refused: redirect to scheme 'file' not followed"):
        fetch(f"{server.base}/to?url=file:///etc/passwd")


def test_same_host_redirects_are_followed_a_few_times(server: RedirectingServer) -> None:
    assert fetch(f"{server.base}/to?url=/good") == GOOD
    assert fetch(f"{server.base}/to?url={server.base}/good") == GOOD
    with pytest.raises(TargetRefused, match=r"^refused: more than 3 redirects$"):
        fetch(f"{server.base}/loop")


def test_redirect_that_resolves_into_a_denied_network_is_refused_at_connect(server: RedirectingServer) -> None:
    # Same host, so the redirect rule lets it through; the address check still applies on every hop.
    policy = NetworkPolicy(deny=["127.0.0.0/8", "::1/128"])
    with pytest.raises(TargetRefused, match="denied network"):
        fetch(f"http://localhost:{server.port}/to?url=/good", policy)


def test_per_target_response_limit(server: RedirectingServer) -> None:
    with pytest.raises(ResponseTooLarge, match="response larger than 100 bytes"):
        fetch(f"{server.base}/good", max_response_bytes=100)
    assert fetch(f"{server.base}/good", max_response_bytes=len(GOOD)) == GOOD


def test_refusals_are_target_health_errors(server: RedirectingServer, sqlite_url: str) -> None:
    store = Store.from_url(sqlite_url)
    settings = Settings(database_url=sqlite_url, retention_raw=TEST_RETENTION)
    stored: list[object] = []

    def ingest_scraped(data: bytes, labels: dict[str, str], kind: str, time_ns: int, key: str) -> object:
        from server.ingest.profile import ingest

        stored.append(ingest(store, settings, data, labels, kind, time_ns, idempotency_key=key))
        return stored[-1]

    async def run() -> dict[str, HealthState]:
        manager = ScrapeManager(
            [],
            InProcessSink(ingest_scraped),
            Fetcher(FetchLimits(), policy=settings.network_policy()),
            CollectorMetrics(CollectorRegistry()),
        )
        heap = ProfileSpec("heap", path="/good")
        states: dict[str, HealthState] = {}
        for name, url in [
            ("metadata", "http://169.254.169.254"),
            ("redirect", f"{server.base}/to?url=http://169.254.169.254/"),
            ("normal", server.base),
        ]:
            states[name] = HealthState("heap")
            spec = heap if name != "redirect" else ProfileSpec("heap", path="")
            target = TargetSpec(url=url, service=name, profiles=(spec,), path_prefix="/")
            await manager.scrape(target, spec, states[name])
        await manager.stop(1)
        return states

    try:
        states = asyncio.run(run())
    finally:
        store.close()
    assert states["metadata"].up is False
    assert states["metadata"].last_error == (
        "refused: 169.254.169.254 is in the denied network 169.254.0.0/16 (GET http://169.254.169.254/good)"
    )
    assert states["redirect"].last_error == (
        "refused: redirect to another host (169.254.169.254) not followed "
        f"(GET {server.base}/to?url=http://169.254.169.254/heap)"
    )
    assert states["normal"].up is True and states["normal"].last_error is None
    assert len(stored) == 1


def test_cli_refuses_a_denied_address_and_a_bad_network_setting(
    client: TestClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from stackyard import targetscli
    from stackyard.apiclient import ApiClient
    from stackyard.cli import build_parser, main

    # `stackyard targets add` asks the server, whose check refuses the address (here the in-process app).
    args = build_parser().parse_args(["targets", "add", "http://169.254.169.254/", "--service", "s"])
    assert targetscli.run(args, ApiClient("http://testserver", client=client)) == 2
    assert "422: url: refused: 169.254.169.254 is in the denied network 169.254.0.0/16" in capsys.readouterr().err
    monkeypatch.setenv("STACKYARD_SCRAPE_DENY_NETWORKS", '["10.0.0.0/8", "not-a-network"]')
    assert main(["targets", "list"]) == 2
    err = capsys.readouterr().err
    assert "invalid setting: scrape_deny_networks" in err and "not-a-network" in err


# ---------------------------------------------------------------- address forms (what an address reaches)

METADATA_FORMS = [
    ("http://[::a9fe:a9fe]/", "::a9fe:a9fe reaches 169.254.169.254"),  # IPv4-compatible
    ("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe reaches 169.254.169.254"),  # NAT64
    ("http://[64:ff9b:1::a9fe:a9fe]/", "64:ff9b:1::a9fe:a9fe reaches 169.254.169.254"),  # NAT64, local use
    ("http://[::ffff:0:a9fe:a9fe]/", "::ffff:0:a9fe:a9fe reaches 169.254.169.254"),  # IPv4-translated
    ("http://[2002:a9fe:a9fe::1]/", "2002:a9fe:a9fe::1 reaches 169.254.169.254"),  # 6to4
    ("http://[2001:0:4136:e378:8000:63bf:5601:5601]/", "reaches 169.254.169.254"),  # Teredo client
    ("http://[::ffff:a9fe:a9fe]/", "169.254.169.254 is in"),  # IPv4-mapped: the same address on the wire
    ("http://0251.0376.0251.0376/", "169.254.169.254 is in"),  # octal
    ("http://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254 is in"),  # hex per part
    ("http://169.16689662/", "169.254.169.254 is in"),  # a.b-as-24-bits
    ("http://169.254.169.254./", "169.254.169.254 is in"),  # a trailing dot, which browsers drop
    ("http://169\u3002254\u3002169\u3002254/", "169.254.169.254 is in"),  # ideographic full stops (IDNA dots)
]
THIS_HOST_FORMS = [
    ("http://0.0.0.0:6060/", "0.0.0.0 reaches 127.0.0.1, which is in the denied network 127.0.0.0/8"),
    ("http://0:6060/", "0.0.0.0 reaches 127.0.0.1, which is in the denied network 127.0.0.0/8"),
    ("http://0.1.2.3:6060/", "0.1.2.3 reaches 127.0.0.1"),
    ("http://[::]:6060/", ":: reaches 127.0.0.1, which is in the denied network 127.0.0.0/8"),
    ("http://[::ffff:0.0.0.0]:6060/", "0.0.0.0 reaches 127.0.0.1"),
    ("http://[64:ff9b::]:6060/", "64:ff9b:: reaches 127.0.0.1"),  # NAT64 of 0.0.0.0
    ("http://2130706433:6060/", "127.0.0.1 is in the denied network 127.0.0.0/8"),
    ("http://0x7f000001:6060/", "127.0.0.1 is in the denied network 127.0.0.0/8"),
    ("http://0177.1:6060/", "127.0.0.1 is in the denied network 127.0.0.0/8"),
    ("http://127.1:6060/", "127.0.0.1 is in the denied network 127.0.0.0/8"),
    ("http://[::ffff:127.0.0.1]:6060/", "127.0.0.1 is in the denied network 127.0.0.0/8"),
    ("http://[::1]:6060/", "::1 is in the denied network ::1/128"),
]


@pytest.mark.parametrize(("url", "reason"), METADATA_FORMS)
def test_metadata_address_in_any_form_is_refused_by_the_default_policy(url: str, reason: str) -> None:
    with pytest.raises(InvalidTarget, match=r"denied network 169\.254\.0\.0/16") as refused:
        check_target(TargetSpec(url=url, service="s"), NetworkPolicy())
    assert reason in str(refused.value)


@pytest.mark.parametrize(("url", "reason"), THIS_HOST_FORMS)
def test_this_host_in_any_form_is_refused_by_a_loopback_deny(url: str, reason: str) -> None:
    with pytest.raises(InvalidTarget) as refused:
        check_target(TargetSpec(url=url, service="s"), LOOPBACK_DENIED)
    assert reason in str(refused.value)
    assert check_target(TargetSpec(url=url, service="s"), NetworkPolicy()).url == url  # loopback is allowed by default


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]", "0", "[::ffff:0.0.0.0]"])
def test_unspecified_addresses_really_reach_this_host_and_are_refused_at_connect(
    server: RedirectingServer, host: str
) -> None:
    if host in ("[::]",):
        ipv6 = RedirectingServer(family_v6=True)
        try:
            url = f"http://{host}:{ipv6.port}/good"
            assert fetch(url) == GOOD  # the default policy: :: reaches the server on ::1
            with pytest.raises(TargetRefused, match=r"^refused: :: reaches 127\.0\.0\.1, which is in the denied"):
                fetch(url, LOOPBACK_DENIED)
        finally:
            ipv6.close()
        return
    url = f"http://{host}:{server.port}/good"
    assert fetch(url) == GOOD  # 0.0.0.0 reaches the server listening on 127.0.0.1
    with pytest.raises(TargetRefused, match=r"^refused: 0\.0\.0\.0 reaches 127\.0\.0\.1, which is in the denied"):
        fetch(url, LOOPBACK_DENIED)
