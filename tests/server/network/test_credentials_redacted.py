"""A password written into a target's URL is used to scrape, and shown to nobody who only reads.

The finding: ``http://user:pass@host/`` targets were listed in full to
``read`` tokens. Here the server is what ``stackyard serve`` builds (its
in-process scraper included) with real tokens, and the target is a real HTTP
server on loopback that serves a real heap profile only to the right basic
credentials, so the scrape itself proves the password is still used. Then
every place a reader looks is searched for it: the targets list and one
target, health, the error of a failed trace capture, ``/metrics``, the logs,
and a webhook URL in the receivers list.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.auth.tokens import Scope, TokenEntry, digest
from server.network.redact import redact_credentials
from server.settings import Settings
from stackyard.runtime import build_server
from tests.conftest import TEST_RETENTION
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

PASSWORD = "s3cret-pass-do-not-show"
TOKENS = {scope: f"sy_redaction-test-{scope.value}-token" for scope in Scope}
COLLECTOR = "sy_redaction-test-collector-token"  # what `stackyard collect` needs: read (targets) and ingest
ENTRIES = [
    *(TokenEntry(name=f"t-{s.value}", scopes=[s], sha256=digest(t)) for s, t in TOKENS.items()),
    TokenEntry(name="collector", scopes=[Scope.READ, Scope.INGEST], sha256=digest(COLLECTOR)),
]
HEAP = (DATA / "heap.pb.gz").read_bytes()


class ProtectedTarget:
    """Serves /debug/pprof/heap to ``scraper:PASSWORD`` only (401 otherwise); everything else is 404."""

    def __init__(self) -> None:
        expected = "Basic " + base64.b64encode(f"scraper:{PASSWORD}".encode()).decode()
        self.authorized = 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                if not self.path.startswith("/debug/pprof/heap"):
                    status, body = 404, b"404 page not found\n"
                elif self.headers.get("Authorization") != expected:
                    status, body = 401, b"Unauthorized\n"
                else:
                    target.authorized += 1
                    status, body = 200, HEAP
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        target = self
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def protected() -> Iterator[ProtectedTarget]:
    target = ProtectedTarget()
    yield target
    target.close()


def auth(scope: Scope) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[scope]}"}


def wait_until(check: Any, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_url_credentials_are_used_and_never_shown_to_readers(
    sqlite_url: str, protected: ProtectedTarget, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = Settings(
        database_url=sqlite_url, retention_raw=TEST_RETENTION, auth_tokens=ENTRIES, scrape_sync_interval=0.2
    )
    url = f"http://scraper:{PASSWORD}@127.0.0.1:{protected.port}/"
    wrong = f"http://scraper:{PASSWORD}-but-wrong@127.0.0.1:{protected.port}/"
    shown = f"http://scraper:xxxxx@127.0.0.1:{protected.port}/"
    with TestClient(build_server(settings)) as client:
        created = []
        for service, target_url in (("good", url), ("bad", wrong)):
            body = {"url": target_url, "service": service, "interval": "1s", "profiles": ["heap"]}
            response = client.post("/api/v1/targets", json=body, headers=auth(Scope.ADMIN))
            assert response.status_code == 201, response.text
            assert response.json()["url"] == target_url  # the admin who wrote it sees it
            created.append(response.json()["id"])
        hook = {"name": "pager", "webhook_url": f"https://alerts:{PASSWORD}@192.0.2.7/hook"}
        assert client.post("/api/v1/receivers", json=hook, headers=auth(Scope.ADMIN)).status_code == 201

        def both_scraped() -> bool:
            listed = client.get("/api/v1/targets", headers=auth(Scope.READ)).json()["targets"]
            return all(t["health"].get("heap", {}).get("up") is not None for t in listed)

        wait_until(both_scraped)
        assert protected.authorized >= 1  # the password in the URL is what the scrape authenticated with

        as_reader = client.get("/api/v1/targets", headers=auth(Scope.READ)).json()["targets"]
        assert {t["service"]: t["url"] for t in as_reader} == {"good": shown, "bad": shown}
        health = {t["service"]: t["health"]["heap"] for t in as_reader}
        assert health["good"]["up"] is True
        assert health["bad"]["up"] is False and health["bad"]["last_error"].startswith("HTTP 401")
        assert client.get(f"/api/v1/targets/{created[0]}", headers=auth(Scope.READ)).json()["url"] == shown
        # A collector (read and ingest) scrapes with the password, so it gets it; so does an admin.
        for headers in ({"Authorization": f"Bearer {COLLECTOR}"}, auth(Scope.ADMIN)):
            listed = client.get("/api/v1/targets", headers=headers).json()["targets"]
            assert {t["url"] for t in listed} == {url, wrong}
        receivers = client.get("/api/v1/receivers", headers=auth(Scope.READ)).json()["receivers"]
        assert [r["webhook_url"] for r in receivers] == ["https://alerts:xxxxx@192.0.2.7/hook"]

        # The target serves no trace: the error names the target, without its password.
        trace = client.post(f"/api/v1/targets/{created[0]}/trace?seconds=1", headers=auth(Scope.ADMIN))
        assert trace.status_code == 502
        assert trace.json()["error"].startswith(f"trace capture from {shown} failed: HTTP 404")

        # The edit form sends back what it was shown: a redacted URL leaves the stored one as it is.
        patched = client.patch(f"/api/v1/targets/{created[0]}", json={"url": shown}, headers=auth(Scope.ADMIN))
        assert patched.status_code == 200 and patched.json()["url"] == url

        metrics = client.get("/metrics", headers=auth(Scope.READ)).text
        readable = [
            metrics,
            client.get("/api/v1/targets", headers=auth(Scope.READ)).text,
            client.get("/api/v1/receivers", headers=auth(Scope.READ)).text,
            trace.text,
        ]
    assert not [text for text in readable if PASSWORD in text]
    # Stackyard's own log lines (httpx's request lines are switched off by logs.configure, and redacted anyway).
    ours = [r for r in caplog.records if r.name.startswith(("server.", "collector.", "stackyard."))]
    logged = [f"{record.getMessage()} {record.__dict__}" for record in ours]
    assert any("scrape" in line and shown in line for line in logged)  # the scrape log names the target
    assert not [line for line in logged if PASSWORD in line]


def test_the_log_handler_redacts_whatever_logs_a_url(capsys: pytest.CaptureFixture[str]) -> None:
    from server import logs

    logs.configure("INFO", "json")
    logging.getLogger("some.library").warning(
        "GET %s failed", f"http://u:{PASSWORD}@h/", extra={"url": f"https://{PASSWORD}@h"}
    )
    logging.getLogger("httpx").warning(f"HTTP Request: GET http://u:{PASSWORD}@h/ 200")
    err = capsys.readouterr().err
    assert PASSWORD not in err
    assert '"event": "GET http://u:xxxxx@h/ failed"' in err and '"url": "https://xxxxx@h"' in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://user:pass@host/x", "http://user:xxxxx@host/x"),
        ("https://token@host:8443", "https://xxxxx@host:8443"),
        (
            "get http://a:b@c/d?e=f@g failed, then https://h@i/",
            "get http://a:xxxxx@c/d?e=f@g failed, then https://xxxxx@i/",
        ),
        ("http://u:p@[::1]:6060/", "http://u:xxxxx@[::1]:6060/"),
        ("http://u:p:q@h/", "http://u:xxxxx@h/"),  # everything after the first colon is the password
        ("http://u%40x:p%40y@h/", "http://u%40x:xxxxx@h/"),
        ("http://a@b@c/", "http://xxxxx@c/"),  # the last @ ends the userinfo, as URL parsers read it
        ("no url here: user@example.com", "no url here: user@example.com"),
        ("http://host/path@not-userinfo", "http://host/path@not-userinfo"),
    ],
)
def test_redaction_of_text(text: str, expected: str) -> None:
    assert redact_credentials(text) == expected
    assert redact_credentials(expected) == expected  # idempotent
