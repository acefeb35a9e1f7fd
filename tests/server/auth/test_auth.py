"""Access control: every route in the app's route table, with no token, a wrong one and each scope.

The route table is read from the app, so a router added later is tried here
without editing this file: its expected scope comes from the written table
below when it is listed, and otherwise from the policy, checked against the
rule that nothing mutating is ever open or read-only.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.app import create_app
from server.auth.binding import InsecureBind, check_bind
from server.auth.policy import is_connect, required_scope
from server.auth.tokens import Scope, TokenEntry, TokenSet, digest, new_token
from server.settings import Settings
from tests.conftest import TEST_RETENTION

TOKENS = {scope: f"token-{scope.value}-{'x' * 24}" for scope in Scope}
WRONG = "token-that-nobody-configured"
ENTRIES = [
    TokenEntry(name=f"name-{scope.value}-secret-ish", scopes=[scope], sha256=digest(token))
    for scope, token in TOKENS.items()
]

#: What the issue asks of the routes that exist today; routes not listed fall back to the policy.
EXPECTED: dict[tuple[str, str], Scope | None] = {
    ("GET", "/healthz"): None,
    ("GET", "/readyz"): None,
    ("GET", "/metrics"): Scope.READ,
    ("POST", "/api/v1/ingest"): Scope.INGEST,
    ("POST", "/api/v1/targets"): Scope.ADMIN,
    ("PATCH", "/api/v1/targets/{target_id}"): Scope.ADMIN,
    ("DELETE", "/api/v1/targets/{target_id}"): Scope.ADMIN,
    ("POST", "/api/v1/targets/{target_id}/trace"): Scope.ADMIN,
    ("GET", "/api/v1/targets"): Scope.READ,
    ("GET", "/api/v1/top"): Scope.READ,
    ("GET", "/api/v1/flamegraph"): Scope.READ,
    ("GET", "/api/v1/traces/{trace_id}"): Scope.READ,
    ("POST", "/api/v1/login"): None,
    ("POST", "/api/v1/logout"): None,
}


def route_table(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every route, routers included however FastAPI nests them."""
    found: set[tuple[str, str]] = set()

    def visit(routes: Any) -> None:
        for route in routes:
            if hasattr(route, "effective_route_contexts"):
                for context in route.effective_route_contexts():
                    for method in context.methods or ():
                        found.add((method, context.path_format))
            elif hasattr(route, "methods") and hasattr(route, "path_format"):
                for method in route.methods or ():
                    found.add((method, route.path_format))
            elif hasattr(route, "routes") and route.routes:
                visit(route.routes)

    visit(app.routes)
    return sorted(found)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def expected_scope(method: str, path: str) -> Scope | None:
    if (method, path) in EXPECTED:
        return EXPECTED[(method, path)]
    scope = required_scope(method, concrete(path))
    if method == "POST" and path.startswith("/querier.v1.QuerierService/"):
        assert scope is Scope.READ, f"{path} only reads"  # Connect queries are POSTs
    elif method == "POST" and path.startswith("/push.v1.PusherService/"):
        assert scope is Scope.INGEST, f"{path} stores profiles"
    elif method not in ("GET", "HEAD", "OPTIONS"):
        assert scope in (Scope.INGEST, Scope.ADMIN), f"{method} {path} would be {scope}: mutating routes need more"
    return scope


@pytest.fixture
def secured(sqlite_url: str) -> Iterator[TestClient]:
    # The route sweep sends a wrong token to every route from one address, which the failure limit would
    # answer 429 after ten; the limit has its own tests (tests/server/auth/test_auth_throttle.py).
    settings = Settings(
        database_url=sqlite_url, retention_raw=TEST_RETENTION, auth_tokens=ENTRIES, login_max_failures=10_000
    )
    with TestClient(create_app(settings), raise_server_exceptions=False, follow_redirects=False) as client:
        yield client


def _call(client: TestClient, method: str, path: str, token: str | None, basic: bool = False) -> Any:
    """The request with ``token`` as a Bearer token, or as Basic auth's password (as Pyroscope's clients send it)."""
    if token is None:
        headers = {}
    elif basic:
        headers = {"Authorization": "Basic " + base64.b64encode(f"pyroscope:{token}".encode()).decode()}
    else:
        headers = {"Authorization": f"Bearer {token}"}
    return client.request(method, concrete(path), headers=headers)


def refusal(path: str, status: int) -> dict[str, Any]:
    """The refusal body: Connect's error shape on a Connect service's path, Stackyard's elsewhere."""
    message = "authentication required" if status == 401 else "forbidden"
    if is_connect(path):
        return {"code": "unauthenticated" if status == 401 else "permission_denied", "message": message}
    return {"error": message, "status": status}


def _assert_no_leak(response: Any) -> None:
    text = response.text
    for entry in ENTRIES:
        assert entry.name not in text
    for token in TOKENS.values():
        assert token not in text
    assert "scope" not in text.lower() and "admin" not in text.lower()


def test_route_table_is_read_from_the_app(secured: TestClient) -> None:
    routes = route_table(secured.app)  # type: ignore[arg-type]
    assert ("POST", "/api/v1/ingest") in routes and ("DELETE", "/api/v1/targets/{target_id}") in routes
    assert len(routes) >= 25


def test_every_route_with_no_token_a_wrong_token_and_each_scope(secured: TestClient) -> None:
    routes = route_table(secured.app)  # type: ignore[arg-type]
    checked = 0
    for method, path in routes:
        needed = expected_scope(method, path)
        anonymous = _call(secured, method, path, None)
        wrong = _call(secured, method, path, WRONG)
        wrong_password = _call(secured, method, path, WRONG, basic=True)
        if needed is None:
            assert anonymous.status_code not in (401, 403), f"{method} {path} should be open"
            continue
        for response in (anonymous, wrong, wrong_password):
            assert response.status_code == 401, f"{method} {path}: {response.status_code}"
            if method != "HEAD":
                assert response.json() == refusal(path, 401)
            assert response.headers["www-authenticate"] == "Bearer"
            _assert_no_leak(response)
        for scope, token in TOKENS.items():
            response = _call(secured, method, path, token)
            allowed = scope in (Scope.ADMIN, needed)
            if allowed:
                assert response.status_code not in (401, 403), f"{method} {path} with {scope}: {response.text}"
                assert response.status_code < 500, f"{method} {path} with {scope}: {response.text}"
                if scope is needed:  # the same token as Basic auth's password is the same token
                    basic = _call(secured, method, path, token, basic=True)
                    assert basic.status_code not in (401, 403), f"{method} {path} with Basic {scope}: {basic.text}"
            else:
                assert response.status_code == 403, f"{method} {path} with {scope}: {response.status_code}"
                if method != "HEAD":
                    assert response.json() == refusal(path, 403)
                _assert_no_leak(response)
            checked += 1
    assert checked >= 60


def test_unknown_routes_are_refused_before_routing(secured: TestClient) -> None:
    # An anonymous caller cannot tell real paths from missing ones, and unknown writes need admin.
    assert secured.get("/api/v1/no-such-thing").status_code == 401
    assert secured.post("/api/v2/whatever").status_code == 401
    read = {"Authorization": f"Bearer {TOKENS[Scope.READ]}"}
    ingest = {"Authorization": f"Bearer {TOKENS[Scope.INGEST]}"}
    assert secured.get("/api/v1/no-such-thing", headers=read).status_code == 404
    assert secured.delete("/api/v1/series", headers=read).status_code == 403
    assert secured.put("/api/v1/rules/cpu-high", headers=ingest).status_code == 403
    # An ingest path lets an ingest token through: the route itself answers for its missing parameters.
    assert secured.post("/api/v1/goroutines/ingest", headers=ingest).status_code == 422


def test_static_assets_and_login_page_are_open_pages_redirect(secured: TestClient) -> None:
    assert secured.get("/js/login.js").status_code == 200
    assert secured.get("/css/app.css").status_code == 200
    assert secured.get("/favicon.svg").status_code == 200
    # An asset-looking name outside the asset folders is not open (a page route could match it).
    assert secured.get("/services/checkout.js").status_code == 401
    assert secured.get("/api/v1/series.css").status_code == 401
    login = secured.get("/login.html")
    assert login.status_code == 200 and 'id="login-form"' in login.text
    page = secured.get("/index.html?x=1", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 303
    assert page.headers["location"] == "/login.html?next=%2Findex.html%3Fx%3D1"
    assert secured.get("/", headers={"Accept": "text/html"}).headers["location"] == "/login.html?next=%2F"
    # Not a browser: the same page answers 401 JSON.
    assert secured.get("/").status_code == 401
    metrics = secured.get("/metrics", headers={"Authorization": f"Bearer {TOKENS[Scope.READ]}"})
    assert metrics.status_code == 200
    assert 'stackyard_auth_failures_total{status="401"}' in metrics.text


def test_cookie_login_and_logout(secured: TestClient) -> None:
    assert secured.post("/api/v1/login", json={"token": WRONG}).status_code == 401
    assert "set-cookie" not in secured.post("/api/v1/login", json={"token": WRONG}).headers
    response = secured.post("/api/v1/login", json={"token": TOKENS[Scope.READ]})
    assert response.status_code == 200 and response.json() == {"scopes": ["read"]}
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("stackyard_token=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/" in cookie and "Secure" not in cookie
    assert secured.get("/api/v1/series").status_code == 200  # the client keeps the cookie
    assert secured.get("/", headers={"Accept": "text/html"}).status_code == 200
    assert secured.post("/api/v1/targets", json={"url": "http://127.0.0.1:1", "service": "s"}).status_code == 403
    logout = secured.post("/api/v1/logout")
    assert logout.status_code == 204 and 'stackyard_token=""' in logout.headers["set-cookie"]
    assert secured.get("/api/v1/series").status_code == 401


def test_cookie_is_secure_over_https(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, auth_tokens=ENTRIES)
    with TestClient(create_app(settings), base_url="https://stackyard.example") as client:
        response = client.post("/api/v1/login", json={"token": TOKENS[Scope.ADMIN]})
        assert response.status_code == 200 and "Secure" in response.headers["set-cookie"]


def test_without_tokens_everything_is_open(client: TestClient) -> None:
    assert client.get("/api/v1/series").status_code == 200
    assert client.post("/api/v1/login", json={"token": "x"}).status_code == 400


def test_tokens_match_by_digest_only() -> None:
    token = new_token()
    tokens = TokenSet([TokenEntry(name="ci", scopes=[Scope.INGEST], sha256=digest(token).upper())])
    principal = tokens.authenticate(token)
    assert principal is not None and principal.name == "ci" and principal.allows(Scope.INGEST)
    assert not principal.allows(Scope.READ) and not principal.allows(Scope.ADMIN)
    assert tokens.authenticate(token + "x") is None and tokens.authenticate("") is None
    assert TokenSet([]).authenticate(token) is None
    with pytest.raises(ValueError, match="sha256"):
        TokenEntry(name="ci", scopes=[Scope.READ], sha256=token)  # a token where its digest belongs


def test_tokens_from_environment_and_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stackyard.runtime import build_server

    monkeypatch.setenv(
        "STACKYARD_AUTH_TOKENS", f'[{{"name": "ci", "scopes": ["ingest"], "sha256": "{digest("env-token")}"}}]'
    )
    config = tmp_path / "stackyard.yaml"
    entry = f"    - name: ops\n      scopes: [admin]\n      sha256: {digest('file-token')}\n"
    config.write_text("auth:\n  tokens:\n" + entry)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 's.db'}")
    app = build_server(settings, config)
    assert app.state.tokens.authenticate("env-token").scopes == {Scope.INGEST}
    assert app.state.tokens.authenticate("file-token").scopes == {Scope.ADMIN}


def test_bind_rules() -> None:
    assert check_bind("0.0.0.0", has_tokens=True, insecure=False) is None
    assert "loopback only" in (check_bind("127.0.0.1", has_tokens=False, insecure=False) or "")
    assert "loopback only" in (check_bind("::1", has_tokens=False, insecure=False) or "")
    assert "loopback only" in (check_bind("localhost", has_tokens=False, insecure=False) or "")
    with pytest.raises(InsecureBind, match="--insecure"):
        check_bind("0.0.0.0", has_tokens=False, insecure=False)
    with pytest.raises(InsecureBind):
        check_bind("stackyard.internal", has_tokens=False, insecure=False)
    assert "open to anyone" in (check_bind("0.0.0.0", has_tokens=False, insecure=True) or "")


def test_serve_refuses_a_network_address_without_tokens(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stackyard", "serve", "--host", "0.0.0.0", "--port", "0"],
        env={"STACKYARD_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0 without API tokens" in result.stderr and "--insecure" in result.stderr
    assert not (tmp_path / "s.db").exists() or (tmp_path / "s.db").stat().st_size == 0  # nothing migrated


def test_serve_on_loopback_says_access_control_is_off(tmp_path: Path) -> None:
    from tests.stackyard.test_processes import stackyard
    from tests.support.pgserver import free_port

    port = free_port()
    env = {"STACKYARD_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}
    with stackyard(["serve", "--port", str(port)], env, f"http://127.0.0.1:{port}/readyz") as process:
        pass
    assert process.stderr is not None
    assert "access control is off, so serving on loopback only" in process.stderr.read()


def test_token_command_prints_a_token_and_its_entry(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from stackyard.cli import main

    assert main(["token", "ci", "--scope", "ingest", "--scope", "read"]) == 0
    lines = capsys.readouterr().out.splitlines()
    token = lines[0].removeprefix("token: ")
    entry = TokenEntry.model_validate(json.loads(lines[1].removeprefix("entry: ")))
    assert entry.name == "ci" and set(entry.scopes) == {Scope.INGEST, Scope.READ}
    principal = TokenSet([entry]).authenticate(token)
    assert principal is not None and principal.allows(Scope.INGEST)
    assert token not in lines[1]


def test_config_file_auth_section_is_checked(tmp_path: Path) -> None:
    from server.config.load import load_config
    from server.config.problems import ConfigError

    config = tmp_path / "stackyard.yaml"
    config.write_text("auth:\n  tokens:\n    - name: ops\n      scopes: [root]\n      sha256: not-a-digest\n")
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    text = str(raised.value)
    assert "stackyard.yaml:4: auth.tokens[0].scopes[0]" in text and "stackyard.yaml:5: auth.tokens[0].sha256" in text


def test_collector_sends_its_token_to_a_secured_server(tmp_path: Path) -> None:
    import asyncio

    import httpx
    from prometheus_client import CollectorRegistry

    from collector.metrics import CollectorMetrics
    from collector.sinks import HttpPushSink, ScrapedProfile
    from server.auth.tokens import bearer_header
    from stackyard.collecting import remote_targets
    from tests.support.browser import serving
    from tests.support.tools import DATA

    collector_token = "sy_collector_token_for_the_test"
    entries = [TokenEntry(name="collector", scopes=[Scope.INGEST, Scope.READ], sha256=digest(collector_token))]
    settings = Settings(api_token=collector_token)
    headers = bearer_header(settings.api_token)
    with serving(f"sqlite:///{tmp_path / 's.db'}", auth_tokens=entries) as live:
        assert remote_targets(live.url, headers)() == []
        with pytest.raises(httpx.HTTPStatusError, match="401"):
            remote_targets(live.url)()

        async def push(with_headers: dict[str, str]) -> tuple[int, int, int]:
            metrics = CollectorMetrics(CollectorRegistry())
            sink = HttpPushSink(live.url, metrics, headers=with_headers)
            data = (DATA / "heap.pb.gz").read_bytes()
            await sink.send(ScrapedProfile("heap", {"service": "pushed"}, data, 1_790_000_000 * 10**9, "k"))
            await sink.close(10)
            return int(metrics.sink_sent._value.get()), int(metrics.sink_rejected._value.get()), sink.buffered()

        assert asyncio.run(push(headers)) == (1, 0, 0)
        # Refused for want of a token: kept for a retry once the token is fixed, not dropped as a bad profile.
        assert asyncio.run(push({})) == (0, 0, 1)
        series = httpx.get(f"{live.url}/api/v1/series", headers=headers, timeout=30).json()
        assert [s["labels"]["service"] for s in series["series"]] == ["pushed"]


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/healthz", None),
        ("HEAD", "/js/explore.js", None),
        ("GET", "/login", None),
        ("GET", "/", Scope.READ),
        ("GET", "/explore", Scope.READ),
        ("GET", "/metrics", Scope.READ),
        ("GET", "/api/v1/goroutines", Scope.READ),
        ("POST", "/api/v1/ingest", Scope.INGEST),
        ("PUT", "/api/v1/goroutines/ingest", Scope.INGEST),
        ("POST", "/api/v1/targets", Scope.ADMIN),
        ("PUT", "/api/v1/rules/cpu-high", Scope.ADMIN),
        ("DELETE", "/api/v1/receivers/slack", Scope.ADMIN),
        ("PATCH", "/api/v1/alerts/3", Scope.ADMIN),
        ("POST", "/api/v1/ingestion-settings", Scope.ADMIN),  # "ingest" must be a whole segment
        ("PATCH", "/api/v1/ingest", Scope.ADMIN),
        ("POST", "/healthz", Scope.ADMIN),
        ("TRACE", "/", Scope.ADMIN),
        ("POST", "/querier.v1.QuerierService/SelectMergeStacktraces", Scope.READ),
        ("PUT", "/querier.v1.QuerierService/SelectMergeStacktraces", Scope.ADMIN),
        ("POST", "/api/v1/querier.v1.QuerierService/Series", Scope.ADMIN),
        ("POST", "/ingest", Scope.INGEST),  # the pyroscope-go SDK
        ("POST", "/push.v1.PusherService/Push", Scope.INGEST),  # Alloy
        ("GET", "/push.v1.PusherService/Push", Scope.READ),  # answered "only POST is served" to a reader
        ("PUT", "/push.v1.PusherService/Push", Scope.ADMIN),
    ],
)
def test_policy_table(method: str, path: str, scope: Scope | None) -> None:
    assert required_scope(method, path) == scope
