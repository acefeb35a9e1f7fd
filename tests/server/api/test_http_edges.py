"""HTTP edges of access control: ``HEAD /metrics``, WebSocket upgrades, and cross-site writes with the cookie.

``HEAD`` and WebSockets run against the real app under uvicorn (the server
``stackyard serve`` runs), with the real ``websockets`` client; the
cross-site rules are replayed with the headers a browser sends (the same
attack in real Chromium is tests/web/test_web_csrf.py).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from collector.httpapp import metrics_app
from server.app import create_app
from server.auth.middleware import COOKIE_NAME
from server.auth.tokens import Scope, TokenEntry, digest
from server.settings import Settings
from tests.conftest import TEST_RETENTION
from tests.support.browser import LiveServer, serving

TOKENS = {scope: f"sy_edges-test-{scope.value}-token" for scope in Scope}
ENTRIES = [TokenEntry(name=f"e-{s.value}", scopes=[s], sha256=digest(t)) for s, t in TOKENS.items()]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    database = tmp_path_factory.mktemp("edges") / "stackyard.db"
    with serving(f"sqlite:///{database}", auth_tokens=ENTRIES) as live:
        yield live


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    database = tmp_path_factory.mktemp("edges-open") / "stackyard.db"
    with serving(f"sqlite:///{database}") as live:
        yield live


def bearer(scope: Scope) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[scope]}"}


# ---------------------------------------------------------------- HEAD /metrics


def test_head_metrics_answers_like_get_without_a_body(secured: LiveServer, open_server: LiveServer) -> None:
    got = httpx.get(f"{secured.url}/metrics", headers=bearer(Scope.READ), timeout=30)
    head = httpx.head(f"{secured.url}/metrics", headers=bearer(Scope.READ), timeout=30)
    assert (got.status_code, head.status_code) == (200, 200)
    assert head.headers["content-type"] == got.headers["content-type"]
    assert int(head.headers["content-length"]) > 1000 and head.content == b""
    assert httpx.head(f"{secured.url}/metrics", timeout=30).status_code == 401  # the same access rule as GET
    assert httpx.head(f"{open_server.url}/metrics", timeout=30).status_code == 200


def test_head_metrics_on_the_collector() -> None:
    app = metrics_app(CollectorRegistry(), Settings(auth_tokens=ENTRIES))
    with TestClient(app) as client:
        head = client.head("/metrics", headers=bearer(Scope.READ))
        assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0
        assert client.head("/metrics").status_code == 401


# ---------------------------------------------------------------- WebSockets


@pytest.mark.parametrize("path", ["/", "/api/v1/targets", "/metrics", "/ws", "/login.html"])
def test_websocket_upgrades_are_refused_with_or_without_a_token(
    secured: LiveServer, open_server: LiveServer, path: str
) -> None:
    attempts = [
        (secured, {}),
        (secured, bearer(Scope.ADMIN)),
        (secured, {"Cookie": f"{COOKIE_NAME}={TOKENS[Scope.ADMIN]}"}),
        (open_server, {}),
    ]
    for live, headers in attempts:
        with pytest.raises(InvalidStatus) as refused:
            connect(live.url.replace("http://", "ws://") + path, additional_headers=headers, open_timeout=10)
        assert refused.value.response.status_code == 403, (live.url, headers)
    assert httpx.get(f"{secured.url}/healthz", timeout=30).status_code == 200  # the server is fine afterwards


# ---------------------------------------------------------------- cross-site writes


@pytest.fixture
def app_with_tokens(sqlite_url: str) -> Iterator[TestClient]:
    settings = Settings(database_url=sqlite_url, retention_raw=TEST_RETENTION, auth_tokens=ENTRIES)
    with TestClient(create_app(settings), base_url="http://stackyard.test:4180") as client:
        yield client


TARGET = {"url": "http://127.0.0.1:6060", "service": "csrf"}


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Origin": "http://stackyard.test:9999"}, "Origin 'http://stackyard.test:9999' is not this server's origin"),
        ({"Origin": "https://stackyard.test:4180"}, "is not this server's origin"),  # another scheme
        ({"Origin": "null"}, "Origin 'null' is not this server's origin"),
        ({"Sec-Fetch-Site": "same-site"}, "Sec-Fetch-Site is 'same-site'"),
        ({"Sec-Fetch-Site": "cross-site", "Origin": "http://stackyard.test:4180"}, "Sec-Fetch-Site is 'cross-site'"),
        ({}, "a request authenticated by the login cookie must carry Origin or Sec-Fetch-Site"),
    ],
)
def test_cookie_writes_from_elsewhere_are_refused(
    app_with_tokens: TestClient, headers: dict[str, str], why: str
) -> None:
    app_with_tokens.cookies.set(COOKIE_NAME, TOKENS[Scope.ADMIN])
    for method, path in [
        ("POST", "/api/v1/targets"),
        ("POST", "/api/v1/targets/1/trace"),
        ("DELETE", "/api/v1/targets/1"),
    ]:
        response = app_with_tokens.request(method, path, json=TARGET if method == "POST" else None, headers=headers)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"].startswith("cross-site request refused: ")
        assert why in response.json()["error"]
    assert app_with_tokens.get("/api/v1/targets", headers=bearer(Scope.READ)).json()["targets"] == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://stackyard.test:4180"},
        {"Origin": "http://stackyard.test:4180"},
        {"Origin": "HTTP://Stackyard.TEST:4180"},
    ],
)
def test_cookie_writes_from_our_own_pages_pass(app_with_tokens: TestClient, headers: dict[str, str]) -> None:
    app_with_tokens.cookies.set(COOKIE_NAME, TOKENS[Scope.ADMIN])
    assert app_with_tokens.post("/api/v1/targets", json=TARGET, headers=headers).status_code == 201


def test_default_ports_are_the_same_origin(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, retention_raw=TEST_RETENTION, auth_tokens=ENTRIES)
    with TestClient(create_app(settings), base_url="https://stackyard.test") as client:
        client.cookies.set(COOKIE_NAME, TOKENS[Scope.ADMIN])
        same = client.post("/api/v1/targets", json=TARGET, headers={"Origin": "https://stackyard.test:443"})
        assert same.status_code == 201


def test_bearer_token_requests_are_unaffected(app_with_tokens: TestClient) -> None:
    headers = {**bearer(Scope.ADMIN), "Origin": "http://elsewhere.test", "Sec-Fetch-Site": "cross-site"}
    assert app_with_tokens.post("/api/v1/targets", json=TARGET, headers=headers).status_code == 201


def test_basic_auth_writes_pass_from_clients_and_are_refused_from_other_sites(app_with_tokens: TestClient) -> None:
    # Pyroscope's clients send the token as a Basic password and no Origin: not a browser, so they pass.
    # A browser may have cached Basic credentials, so another site's request carrying them is refused.
    basic = {"Authorization": "Basic " + base64.b64encode(f"alloy:{TOKENS[Scope.ADMIN]}".encode()).decode()}
    assert app_with_tokens.post("/api/v1/targets", json=TARGET, headers=basic).status_code == 201
    elsewhere = {**basic, "Origin": "http://elsewhere.test", "Sec-Fetch-Site": "cross-site"}
    refused = app_with_tokens.post("/api/v1/targets", json={**TARGET, "service": "other"}, headers=elsewhere)
    assert refused.status_code == 403 and refused.json()["error"].startswith("cross-site request refused: ")


def test_open_posts_and_servers_without_tokens_refuse_what_a_browser_marks_cross_site(
    app_with_tokens: TestClient, client: TestClient, tmp_path: Path
) -> None:
    # Logging a victim's browser in (or out) from another page is refused too; a CLI without the headers is not.
    forced = app_with_tokens.post(
        "/api/v1/login", json={"token": TOKENS[Scope.READ]}, headers={"Sec-Fetch-Site": "same-site"}
    )
    assert forced.status_code == 403 and "set-cookie" not in forced.headers
    assert app_with_tokens.post("/api/v1/login", json={"token": TOKENS[Scope.READ]}).status_code == 200
    # Without tokens (loopback only) a page elsewhere cannot write either; the CLI and collectors can.
    refused = client.post("/api/v1/targets", json=TARGET, headers={"Origin": "http://127.0.0.1:9999"})
    assert refused.status_code == 403
    assert client.post("/api/v1/targets", json=TARGET).status_code == 201
    assert client.get("/api/v1/targets", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200  # reads pass
