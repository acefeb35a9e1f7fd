"""End to end with real Go: a leaking demo, the real collector, the evaluator and a webhook on loopback.

The server is what ``stackyard serve --config`` builds (:func:`stackyard.runtime.build_server`),
run inside a TestClient (its lifespan starts the scrape manager and the
alerting jobs). Scrapes every second, evaluation every second. The webhook
must get each rule's firing payload exactly once, nothing more across a
restart of the server while the alerts fire, and the resolved payload exactly
once after the leaking instance is restarted without its leak.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.settings import Settings
from stackyard.runtime import build_server
from tests.support.godemo import running
from tests.support.webhook import WebhookServer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(path: Path, address: str, hook_url: str) -> Path:
    path.write_text(
        "scrape_configs:\n"
        "  - job_name: checkout\n"
        "    scrape_interval: 1s\n"
        "    profiles:\n"
        "      cpu: {enabled: false}\n"
        "      heap: {enabled: false}\n"
        "      allocs: {enabled: false}\n"
        "      mutex: {enabled: false}\n"
        "      block: {enabled: false}\n"
        "      threadcreate: {enabled: false}\n"
        "      goroutineleak: {enabled: false}\n"
        "      goroutine_dump: {interval: 2s}\n"
        f"    static_configs: [{{targets: ['{address}']}}]\n"
        "receivers:\n"
        "  - name: hook\n"
        f"    webhook_url: {hook_url}\n"
        "rules:\n"
        "  - name: GoroutineGrowth\n"
        "    query: '{service=\"checkout\"}'\n"
        "    type: goroutine\n"
        "    expr: increase(20s) > 20\n"
        "    for: 2s\n"
        "    receiver: hook\n"
        "    labels: {severity: page}\n"
        "    annotations: {summary: 'goroutines growing on {{ $labels.instance }}: +{{ $value }} in 20s'}\n"
        "  - name: GoroutineLeak\n"
        "    query: '{service=\"checkout\"}'\n"
        "    type: goroutine\n"
        "    expr: leak_suspect(30s)\n"
        "    receiver: hook\n"
    )
    return path


def _named(bodies: list[dict[str, Any]], rule: str) -> list[dict[str, Any]]:
    return [b for b in bodies if b["groupLabels"]["alertname"] == rule]


def _wait(hook: WebhookServer, rule: str, status: str, timeout_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = _named(hook.bodies(status), rule)
        if found:
            return found
        time.sleep(0.2)
    return _named(hook.bodies(status), rule)


@pytest.mark.timeout(300)
def test_growth_fires_once_survives_a_restart_and_resolves_once(sqlite_url: str, tmp_path: Path) -> None:
    settings = Settings(
        database_url=sqlite_url, rule_eval_interval=1.0, notify_interval=0.5, external_url="http://stackyard.test"
    )
    address = f"127.0.0.1:{_free_port()}"
    with WebhookServer() as hook:
        config = _config(tmp_path / "stackyard.yaml", address, hook.url)
        with running("-leak-rate", "50", "-cpu=false", "-alloc=false", addr=address):
            with TestClient(build_server(settings, config)) as client:
                (firing,) = _wait(hook, "GoroutineGrowth", "firing", 90)
                rules = {r["name"]: r for r in client.get("/api/v1/rules").json()["rules"]}
                assert rules["GoroutineGrowth"]["alerts"]["firing"] == 1
                assert rules["GoroutineGrowth"]["source"] == "config"
                (leak,) = _wait(hook, "GoroutineLeak", "firing", 90)
            alert = firing["alerts"][0]
            assert firing["version"] == "4" and firing["receiver"] == "hook" and firing["status"] == "firing"
            assert alert["labels"]["instance"] == address and alert["labels"]["severity"] == "page"
            assert alert["labels"]["alertname"] == "GoroutineGrowth"
            assert alert["annotations"]["summary"].startswith(f"goroutines growing on {address}: +")
            assert alert["endsAt"] == "0001-01-01T00:00:00Z"
            assert alert["generatorURL"] == "http://stackyard.test/alerts?rule=GoroutineGrowth"
            assert leak["alerts"][0]["labels"]["function"] == "main.leakyWorker"

            # Restart Stackyard (new app, store and evaluator over the same database) while both fire.
            with TestClient(build_server(settings, config)) as client:
                time.sleep(6)  # several evaluation rounds of the new process
                states = {a["rule"]: a["state"] for a in client.get("/api/v1/alerts").json()["alerts"]}
                assert states == {"GoroutineGrowth": "firing", "GoroutineLeak": "firing"}
                assert len(hook.bodies("firing")) == 2

        # The leaking instance restarts without its leak (same address, so the same instance): counts drop.
        with (
            running("-leak-rate", "0", "-cpu=false", "-alloc=false", addr=address),
            TestClient(build_server(settings, config)) as client,
        ):
            (resolved,) = _wait(hook, "GoroutineGrowth", "resolved", 90)
            _wait(hook, "GoroutineLeak", "resolved", 90)
            time.sleep(3)  # more rounds: nothing is sent again
            history = client.get("/api/v1/alerts", params={"rule": "GoroutineGrowth"}).json()["history"]
    assert resolved["alerts"][0]["startsAt"] == alert["startsAt"]
    assert resolved["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    assert len(_named(hook.bodies("firing"), "GoroutineGrowth")) == 1
    assert len(_named(hook.bodies("resolved"), "GoroutineGrowth")) == 1
    assert len(_named(hook.bodies("firing"), "GoroutineLeak")) == 1
    assert len(_named(hook.bodies("resolved"), "GoroutineLeak")) == 1
    assert [(h["from"], h["to"]) for h in reversed(history)][:3] == [
        ("inactive", "pending"),
        ("pending", "firing"),
        ("firing", "resolved"),
    ]
