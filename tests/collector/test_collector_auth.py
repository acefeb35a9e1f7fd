"""``stackyard collect --listen``: /metrics is safe by default, by the same rule and tokens as ``serve``.

Every test runs the real collector process. It pushes to an address where
nothing listens (its buffer holds what it would push), which is all its
/metrics needs; no target is configured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from collector.httpapp import parse_listen
from server.auth.tokens import Scope, digest
from tests.support.pgserver import free_port
from tests.support.procs import stackyard, status, wait_for

TOKENS = {scope: f"sy_collector-test-{scope.value}-token" for scope in Scope}
AUTH_TOKENS = json.dumps(
    [{"name": f"name-{s.value}-private", "scopes": [s.value], "sha256": digest(t)} for s, t in TOKENS.items()]
)
NO_SERVER = "http://127.0.0.1:1"


def collect_args(listen: str, *extra: str) -> list[str]:
    return ["collect", "--push-url", NO_SERVER, "--listen", listen, "--shutdown-deadline", "1", *extra]


@contextmanager
def collector(listen: str, env: dict[str, str], *extra: str) -> Iterator[str]:
    """A running collector; yields its /metrics URL on loopback once it answers (any status)."""
    port = parse_listen(listen)[1]
    url = f"http://127.0.0.1:{port}/metrics"
    with stackyard(collect_args(listen, *extra), env) as process:
        wait_for(lambda: status(url) != 0, 60, "the collector's /metrics", process)
        yield url


def refused(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stackyard", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def get(url: str, token: str | None = None, **headers: str) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(url, headers=headers, timeout=10)


def test_a_network_address_without_tokens_is_refused_before_starting() -> None:
    port = free_port()
    result = refused(collect_args(f"0.0.0.0:{port}"), {})
    assert result.returncode == 2
    assert "stackyard: refusing to serve on 0.0.0.0 without API tokens" in result.stderr
    assert "--insecure" in result.stderr and "Traceback" not in result.stderr
    assert status(f"http://127.0.0.1:{port}/metrics") == 0  # nothing listens
    bad = refused(collect_args("no-port-here"), {})
    assert bad.returncode == 2 and "--listen 'no-port-here': expected HOST:PORT" in bad.stderr


@pytest.mark.timeout(120)
def test_loopback_and_insecure_serve_metrics_openly() -> None:
    with collector(f"127.0.0.1:{free_port()}", {}) as url:
        response = get(url)
        assert response.status_code == 200 and "stackyard_sink_buffered" in response.text
    with collector(f"0.0.0.0:{free_port()}", {}, "--insecure") as url:
        assert get(url).status_code == 200


@pytest.mark.timeout(120)
def test_with_tokens_metrics_need_a_read_token() -> None:
    with collector(f"0.0.0.0:{free_port()}", {"STACKYARD_AUTH_TOKENS": AUTH_TOKENS}) as url:
        for response in (get(url), get(url, "sy_a-token-nobody-configured"), get(url, Accept="text/html")):
            assert response.status_code == 401  # a browser is not sent to a login page this process lacks
            assert response.json() == {"error": "authentication required", "status": 401}
            assert response.headers["www-authenticate"] == "Bearer"
        wrong_scope = get(url, TOKENS[Scope.INGEST])
        assert wrong_scope.status_code == 403 and wrong_scope.json() == {"error": "forbidden", "status": 403}
        for response in (get(url), get(url, "sy_a-token-nobody-configured"), wrong_scope):
            assert "name-" not in response.text and "scope" not in response.text.lower()
            assert not any(token in response.text for token in TOKENS.values())
        assert get(url.replace("/metrics", "/docs")).status_code == 401  # unknown paths are refused alike
        for scope in (Scope.READ, Scope.ADMIN):
            response = get(url, TOKENS[scope])
            assert response.status_code == 200 and "stackyard_sink_buffered" in response.text
        # Six refusals above, and the one answer the start-up poll got.
        text = get(url, TOKENS[Scope.READ]).text
        assert 'stackyard_auth_failures_total{status="401"} 7.0' in text
        assert 'stackyard_auth_failures_total{status="403"} 1.0' in text


@pytest.mark.timeout(120)
def test_guessing_collector_tokens_is_limited() -> None:
    env = {"STACKYARD_AUTH_TOKENS": AUTH_TOKENS, "STACKYARD_LOGIN_MAX_FAILURES": "3"}
    with collector(f"127.0.0.1:{free_port()}", env) as url:
        assert [get(url, f"guess-{n}").status_code for n in range(3)] == [401, 401, 401]
        blocked = get(url, TOKENS[Scope.READ])
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
        assert blocked.json()["status"] == 429


def test_listen_addresses_parse() -> None:
    assert parse_listen("127.0.0.1:4181") == ("127.0.0.1", 4181)
    assert parse_listen(":4181") == ("127.0.0.1", 4181)
    assert parse_listen("[::1]:4181") == ("::1", 4181)
    for bad in ("4181", "host:", "host:http", "host:70000"):
        with pytest.raises(ValueError, match="expected HOST:PORT"):
            parse_listen(bad)


def test_compose_collector_passes_the_bind_rule() -> None:
    # The compose file's collector listens beyond loopback without tokens: it must say --insecure to start.
    import yaml

    from server.auth.binding import check_bind
    from stackyard.cli import build_parser

    compose = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())
    args = build_parser().parse_args(compose["services"]["collector"]["command"][1:])
    host, _port = parse_listen(args.listen)
    assert "open to anyone" in (check_bind(host, has_tokens=False, insecure=args.insecure) or "")
