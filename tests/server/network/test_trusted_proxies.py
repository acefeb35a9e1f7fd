"""Forwarded headers are believed only from ``STACKYARD_TRUSTED_PROXIES``: the login throttle cannot be dodged.

The attack, as found: uvicorn believes ``X-Forwarded-For`` from 127.0.0.1 by
default, so a client on the server's machine (or anything a local proxy
passes on) could give every guess a new address and never meet the failed
login limit. Each test runs the real ``stackyard serve`` process and talks to
it over TCP from 127.0.0.1, as a local client or a reverse proxy would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from server.auth.tokens import Scope, digest
from server.network.proxies import uvicorn_proxy_options
from server.settings import Settings
from tests.support.pgserver import free_port
from tests.support.procs import stackyard, status, wait_for

TOKEN = "sy_trusted-proxies-test-token"
ENTRIES = json.dumps([{"name": "ops", "scopes": [Scope.ADMIN.value], "sha256": digest(TOKEN)}])


@contextmanager
def serving(tmp_path: Path, **env: str) -> Iterator[str]:
    port = free_port()
    environment = {
        "STACKYARD_DATABASE_URL": f"sqlite:///{tmp_path / 'stackyard.db'}",
        "STACKYARD_AUTH_TOKENS": ENTRIES,
        "STACKYARD_LOGIN_MAX_FAILURES": "3",
        **env,
    }
    base = f"http://127.0.0.1:{port}"
    with stackyard(["serve", "--port", str(port)], environment) as process:
        wait_for(lambda: status(base + "/healthz") == 200, 60, "stackyard serve", process)
        yield base


def login(base: str, token: str, **headers: str) -> httpx.Response:
    return httpx.post(f"{base}/api/v1/login", json={"token": token}, headers=headers, timeout=10)


def test_forwarded_headers_are_ignored_by_default(tmp_path: Path) -> None:
    with serving(tmp_path) as base:
        # X-Forwarded-Proto does not make the cookie Secure: the request came over plain HTTP.
        signed_in = login(base, TOKEN, **{"X-Forwarded-Proto": "https"})
        assert signed_in.status_code == 200
        assert "secure" not in signed_in.headers["set-cookie"].lower()
        # A new X-Forwarded-For on every guess: all of them are 127.0.0.1's, and the fourth is refused.
        guesses = [login(base, "wrong", **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code for i in range(4)]
        assert guesses == [401, 401, 401, 429]
        assert login(base, TOKEN, **{"X-Forwarded-For": "192.0.2.1"}).status_code == 429


def test_a_trusted_proxy_speaks_for_its_clients(tmp_path: Path) -> None:
    with serving(tmp_path, STACKYARD_TRUSTED_PROXIES='["127.0.0.1/32", "::1"]') as base:
        signed_in = login(base, TOKEN, **{"X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.50"})
        assert signed_in.status_code == 200 and "secure" in signed_in.headers["set-cookie"].lower()
        attacker = {"X-Forwarded-For": "203.0.113.5"}
        assert [login(base, "wrong", **attacker).status_code for _ in range(3)] == [401, 401, 401]
        assert login(base, TOKEN, **attacker).status_code == 429
        # The right-most address that is not a trusted proxy is the client: a spoofed left part changes nothing.
        assert login(base, TOKEN, **{"X-Forwarded-For": "10.9.9.9, 203.0.113.5"}).status_code == 429
        assert login(base, TOKEN, **{"X-Forwarded-For": "203.0.113.6"}).status_code == 200  # another client
        assert login(base, TOKEN).status_code == 200  # the proxy's own address has no failures


def test_uvicorn_gets_the_setting_and_a_bad_value_stops_the_start(tmp_path: Path) -> None:
    assert uvicorn_proxy_options(Settings()) == {"proxy_headers": False, "forwarded_allow_ips": ""}
    trusted = Settings(trusted_proxies=["10.0.0.7", "fd00::/64"])
    expected = {"proxy_headers": True, "forwarded_allow_ips": ["10.0.0.7/32", "fd00::/64"]}
    assert uvicorn_proxy_options(trusted) == expected
    env = {"STACKYARD_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "STACKYARD_TRUSTED_PROXIES": '["*"]'}
    with stackyard(["serve", "--port", str(free_port())], env) as process:
        assert process.wait(timeout=60) == 2
