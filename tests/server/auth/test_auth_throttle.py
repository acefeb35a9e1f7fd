"""Failed logins and wrong tokens are limited per client address: 429 with Retry-After past the limit.

The app is the real one (``create_app``) with real tokens; clients at
different addresses are TestClients given different peer addresses, which is
what the app sees of a TCP client. The window is a setting, so expiry is
shown with a one-second window and a real wait.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.app import create_app
from server.auth.ratelimit import FailureLimiter
from server.auth.tokens import Scope, TokenEntry, digest
from server.settings import Settings
from tests.conftest import TEST_RETENTION

GOOD = "sy_the-right-token-for-these-tests"
READER = "sy_a-read-only-token-for-these-tests"
ENTRIES = [
    TokenEntry(name="ops-secret-name", scopes=[Scope.ADMIN], sha256=digest(GOOD)),
    TokenEntry(name="reader", scopes=[Scope.READ], sha256=digest(READER)),
]
ATTACKER = ("203.0.113.7", 40000)
USER = ("198.51.100.20", 40001)


def make_app(sqlite_url: str, max_failures: int = 10, window: float = 60.0) -> FastAPI:
    settings = Settings(
        database_url=sqlite_url,
        retention_raw=TEST_RETENTION,
        auth_tokens=ENTRIES,
        login_max_failures=max_failures,
        login_window=window,
    )
    return create_app(settings)


@pytest.fixture
def app(sqlite_url: str) -> Iterator[FastAPI]:
    application = make_app(sqlite_url)
    with TestClient(application):  # runs the lifespan once; the clients below share the started app
        yield application


def client_at(app: FastAPI, address: tuple[str, int]) -> TestClient:
    return TestClient(app, client=address, follow_redirects=False)


def login(client: TestClient, token: str) -> tuple[int, dict[str, object], dict[str, str]]:
    response = client.post("/api/v1/login", json={"token": token})
    return response.status_code, response.json(), dict(response.headers)


def rate_limited(app: FastAPI, via: str) -> float:
    reader = client_at(app, ("192.0.2.250", 1))
    text = reader.get("/metrics", headers={"Authorization": f"Bearer {READER}"}).text
    line = next(
        line for line in text.splitlines() if line.startswith(f'stackyard_auth_rate_limited_total{{via="{via}"}}')
    )
    return float(line.rpartition(" ")[2])


def test_failed_logins_past_the_limit_are_429_with_retry_after(app: FastAPI) -> None:
    attacker = client_at(app, ATTACKER)
    for attempt in range(10):
        status, body, _ = login(attacker, f"guess-{attempt}")
        assert (status, body) == (401, {"error": "authentication required", "status": 401})
    assert rate_limited(app, "login") == 0
    status, body, headers = login(attacker, "guess-10")
    assert status == 429
    assert 55 <= int(headers["retry-after"]) <= 60
    assert body == {
        "error": f"too many failed authentication attempts; try again in {headers['retry-after']} s",
        "status": 429,
    }
    assert "set-cookie" not in headers
    # Blocked means blocked: the right token gets the same answer, so a lucky guess is not revealed.
    status, body, headers = login(attacker, GOOD)
    assert status == 429 and "set-cookie" not in headers and "ops-secret-name" not in str(body)
    assert rate_limited(app, "login") == 2


def test_another_client_logs_in_while_one_is_blocked(app: FastAPI) -> None:
    attacker, user = client_at(app, ATTACKER), client_at(app, USER)
    for attempt in range(10):
        assert login(attacker, f"guess-{attempt}")[0] == 401
    assert login(attacker, "guess-again")[0] == 429
    status, body, headers = login(user, GOOD)
    assert status == 200 and body == {"scopes": ["admin"]} and headers["set-cookie"].startswith("stackyard_token=")
    assert login(user, "a typo")[0] == 401  # the user's own failures are its own
    assert login(attacker, GOOD)[0] == 429


def test_successful_logins_are_not_counted(app: FastAPI) -> None:
    client = client_at(app, USER)
    for attempt in range(9):
        assert login(client, f"typo-{attempt}")[0] == 401
    for _ in range(20):
        assert login(client, GOOD)[0] == 200
    assert login(client, "typo-9")[0] == 401  # the tenth failure is still answered
    assert login(client, GOOD)[0] == 429  # and only now is the address blocked


def test_the_window_expires(sqlite_url: str) -> None:
    app = make_app(sqlite_url, max_failures=3, window=1.0)
    with TestClient(app):
        client = client_at(app, ATTACKER)
        for attempt in range(3):
            assert login(client, f"guess-{attempt}")[0] == 401
        status, _, headers = login(client, GOOD)
        assert status == 429 and headers["retry-after"] == "1"
        time.sleep(1.1)
        status, body, _ = login(client, GOOD)
        assert status == 200 and body == {"scopes": ["admin"]}


def test_wrong_bearer_tokens_count_too(app: FastAPI) -> None:
    attacker, user = client_at(app, ATTACKER), client_at(app, USER)
    for attempt in range(10):
        response = attacker.get("/api/v1/series", headers={"Authorization": f"Bearer guess-{attempt}"})
        assert response.status_code == 401 and response.json() == {"error": "authentication required", "status": 401}
    response = attacker.get("/api/v1/series", headers={"Authorization": f"Bearer {GOOD}"})
    assert response.status_code == 429 and 55 <= int(response.headers["retry-after"]) <= 60
    assert response.json()["status"] == 429 and "ops-secret-name" not in response.text
    # A cookie is a token too; and the login route shares the same count.
    attacker.cookies.set("stackyard_token", GOOD)
    assert attacker.get("/api/v1/series").status_code == 429
    attacker.cookies.clear()
    assert login(attacker, GOOD)[0] == 429
    # Without a token there is nothing to guess: the usual 401, and open paths stay open.
    assert attacker.get("/api/v1/series").status_code == 401
    assert attacker.get("/healthz").status_code == 200
    assert user.get("/api/v1/series", headers={"Authorization": f"Bearer {GOOD}"}).status_code == 200
    assert rate_limited(app, "token") == 2 and rate_limited(app, "login") == 1


def test_right_token_wrong_scope_is_not_a_guess(app: FastAPI) -> None:
    client = client_at(app, USER)
    for _ in range(15):
        response = client.post("/api/v1/targets", json={}, headers={"Authorization": f"Bearer {READER}"})
        assert response.status_code == 403
    assert login(client, GOOD)[0] == 200


def test_the_window_slides() -> None:
    now = [100.0]
    limiter = FailureLimiter(3, 10.0, clock=lambda: now[0])
    for at in (100.0, 108.0, 109.0):
        now[0] = at
        assert limiter.retry_after("a") is None
        limiter.record_failure("a")
    now[0] = 109.5
    assert limiter.retry_after("a") == pytest.approx(0.5)  # the failure at 100 leaves the window at 110
    now[0] = 110.0
    assert limiter.retry_after("a") is None
    limiter.record_failure("a")
    now[0] = 111.0  # a fixed 10 s bucket starting at 110 would allow two more here; the sliding window does not
    assert limiter.retry_after("a") == pytest.approx(7.0)


def test_remembered_addresses_are_bounded() -> None:
    limiter = FailureLimiter(2, 60.0, max_clients=100)
    for n in range(1000):
        limiter.record_failure(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter) == 100
    limiter.record_failure("10.0.3.231")  # the newest address keeps its count
    assert limiter.retry_after("10.0.3.231") is not None
    assert limiter.retry_after("10.0.0.0") is None


def test_a_stale_cookie_is_dropped_and_counts_once(app: FastAPI) -> None:
    # A dashboard left open after its token was rotated away: the first refusal removes the cookie.
    browser = client_at(app, USER)
    # Where the client keeps the cookie the login route sets (the jar names the host testserver.local).
    browser.cookies.set("stackyard_token", "sy_a-token-rotated-away", domain="testserver.local", path="/")
    first = browser.get("/api/v1/series")
    assert first.status_code == 401 and 'stackyard_token=""' in first.headers["set-cookie"]
    assert "Max-Age=0" in first.headers["set-cookie"] and "HttpOnly" in first.headers["set-cookie"]
    assert "stackyard_token" not in browser.cookies
    for _ in range(20):  # the page keeps polling, now without a token: nothing to count
        assert browser.get("/api/v1/series").status_code == 401
    status, body, _ = login(browser, GOOD)
    assert status == 200 and body == {"scopes": ["admin"]}
    # A wrong bearer header is not a cookie: nothing to remove.
    assert "set-cookie" not in browser.get("/api/v1/series", headers={"Authorization": "Bearer x"}).headers


def _basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"pyroscope:{password}".encode()).decode()}


def test_wrong_basic_passwords_count_like_wrong_tokens(app: FastAPI) -> None:
    # How Pyroscope's clients send a token: the password of Basic auth (the user name is not read).
    attacker, user = client_at(app, ATTACKER), client_at(app, USER)
    assert user.get("/api/v1/series", headers=_basic(GOOD)).status_code == 200
    undecodable = {"Authorization": "Basic %%%not-base64%%%"}
    for attempt in range(10):
        headers = undecodable if attempt == 0 else _basic(f"guess-{attempt}")
        response = attacker.post("/ingest", params={"name": "app"}, content=b"", headers=headers)
        assert response.status_code == 401 and response.json() == {"error": "authentication required", "status": 401}
    # Past the limit even the right password waits, on every route and in every form.
    assert attacker.get("/api/v1/series", headers=_basic(GOOD)).status_code == 429
    assert attacker.get("/api/v1/series", headers={"Authorization": f"Bearer {GOOD}"}).status_code == 429
    assert user.get("/api/v1/series", headers=_basic(GOOD)).status_code == 200
    assert rate_limited(app, "token") == 2
