"""Webhooks and Alertmanager pass the network policy as scrapes do; no environment proxy; replies are not kept.

The attacks, as found: ``POST /api/v1/receivers`` with ``http://169.254.169.254/...``
answered 201; with loopback denied, a firing rule still posted to 127.0.0.1 and
[::1]; the dispatcher honoured ``HTTP_PROXY``; a receiver's reply body ended up
in the outbox and the logs. Receivers here are real HTTP servers on loopback
(IPv4 and IPv6), and, as in tests/server/network/test_safe_scraping.py, 127.0.0.0/8 and ::1
on the deny list stand in for networks a test machine cannot reach.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from server.alerts.receivers import Receiver
from server.alerts.rules import parse_rule
from server.alerts.service import Alerting
from server.app import create_app
from server.config.load import load_config
from server.config.problems import ConfigError
from server.network.policy import DEFAULT_DENY_NETWORKS
from server.settings import Settings
from server.store.alerting import Notification
from server.store.repository import Store
from tests.server.alerts.test_alert_evaluator import NS, T0, N, push, rule
from tests.support.webhook import WebhookServer

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

LOOPBACK_DENY = [*DEFAULT_DENY_NETWORKS, "127.0.0.0/8", "::1/128"]
METADATA_URLS = [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is in the denied network 169.254.0.0/16"),
    ("http://[::ffff:169.254.169.254]/", "169.254.169.254 is in the denied network 169.254.0.0/16"),
    (
        "http://[64:ff9b::a9fe:a9fe]/",
        "64:ff9b::a9fe:a9fe reaches 169.254.169.254, which is in the denied network 169.254.0.0/16",
    ),
    ("http://2852039166/", "169.254.169.254 is in the denied network 169.254.0.0/16"),
    ("http://[fd00:ec2::254]/", "fd00:ec2::254 is in the denied network fd00:ec2::254/128"),
]
LOOPBACK_URLS = [
    ("http://127.0.0.1:9/hook", "127.0.0.1 is in the denied network 127.0.0.0/8"),
    ("http://[::1]:9/hook", "::1 is in the denied network ::1/128"),
    ("http://0.0.0.0:9/hook", "0.0.0.0 reaches 127.0.0.1, which is in the denied network 127.0.0.0/8"),
    ("http://[::]:9/hook", ":: reaches 127.0.0.1, which is in the denied network 127.0.0.0/8"),
    ("http://0:9/hook", "0.0.0.0 reaches 127.0.0.1, which is in the denied network 127.0.0.0/8"),
]


def deliver(store: Store, settings: Settings, hooks: dict[str, str]) -> list[Notification]:
    """One firing alert per receiver (name -> URL), sent by a real dispatcher; the outbox afterwards."""
    push(store, settings, 2, 0, "a")
    rules = [parse_rule(rule(f"value > {N}", name=f"To_{name}", receiver=name)) for name in hooks]
    alerting = Alerting(store, settings, rules, [Receiver(name, url) for name, url in hooks.items()])
    alerting.evaluator.evaluate(T0 + NS)

    async def scenario() -> None:
        await alerting.start()
        try:
            assert alerting.dispatcher is not None
            await alerting.dispatcher.run_once()
            await alerting.dispatcher.drain()
        finally:
            await alerting.stop()

    asyncio.run(scenario())
    return store.alerts.outbox()


# ---------------------------------------------------------------- registration


@pytest.mark.parametrize(("url", "reason"), METADATA_URLS)
def test_a_metadata_webhook_is_refused_when_created(client: TestClient, url: str, reason: str) -> None:
    response = client.post("/api/v1/receivers", json={"name": "meta", "webhook_url": url})
    assert response.status_code == 400
    assert response.json()["error"] == f"webhook_url: refused: {reason}"
    assert client.get("/api/v1/receivers").json()["receivers"] == []


def test_loopback_webhooks_are_refused_when_loopback_is_denied(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, scrape_deny_networks=LOOPBACK_DENY)
    with TestClient(create_app(settings)) as client:
        for url, reason in LOOPBACK_URLS:
            response = client.post("/api/v1/receivers", json={"name": "local", "webhook_url": url})
            assert response.status_code == 400, url
            assert response.json()["error"] == f"webhook_url: refused: {reason}"
        # A name is checked where it is resolved: at every connection.
        named = client.post("/api/v1/receivers", json={"name": "named", "webhook_url": "http://localhost:9/hook"})
        assert named.status_code == 201


def test_config_file_receivers_are_checked_at_load(tmp_path: Path) -> None:
    path = tmp_path / "stackyard.yaml"
    path.write_text(
        "receivers:\n"
        "  - name: meta\n"
        "    webhook_url: http://169.254.169.254/latest\n"
        "  - name: nat64\n"
        "    webhook_url: 'http://[64:ff9b::a9fe:a9fe]/'\n"
        "  - name: named\n"
        "    webhook_url: http://localhost:9/hook\n"
        "  - name: fine\n"
        "    webhook_url: http://192.0.2.10/hook\n"
    )
    settings = Settings(scrape_deny_networks=LOOPBACK_DENY)
    with pytest.raises(ConfigError) as raised:
        load_config(path, settings.network_policy())
    problems = [str(problem) for problem in raised.value.problems]
    assert problems == [
        f"{path}:3: receivers[0].webhook_url: refused: 169.254.169.254 is in the denied network 169.254.0.0/16",
        f"{path}:5: receivers[1].webhook_url: refused: 64:ff9b::a9fe:a9fe reaches 169.254.169.254, "
        "which is in the denied network 169.254.0.0/16",
        f"{path}:7: receivers[2].webhook_url: refused: localhost resolves to 127.0.0.1, "
        "which is in the denied network 127.0.0.0/8",
    ]
    # Under the default policy only the metadata receivers are refused.
    with pytest.raises(ConfigError) as again:
        load_config(path, Settings().network_policy())
    assert len(again.value.problems) == 2


def test_a_refused_alertmanager_url_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    with pytest.raises(ValidationError, match=r"refused: 169\.254\.169\.254 is in the denied network"):
        Settings(alertmanager_url="http://169.254.169.254:9093")
    with pytest.raises(ValidationError, match=r"refused: :: reaches 127\.0\.0\.1"):
        Settings(alertmanager_url="http://[::]:9093", scrape_deny_networks=LOOPBACK_DENY)
    from stackyard.cli import main

    monkeypatch.setenv("STACKYARD_ALERTMANAGER_URL", "http://[::ffff:a9fe:a9fe]:9093")
    assert main(["migrate", "--database-url", sqlite_url]) == 2
    assert "invalid setting: alertmanager_url: Value error, refused: 169.254.169.254" in capsys.readouterr().err


# ---------------------------------------------------------------- connect time


def test_firing_rules_do_not_reach_denied_addresses(store: Store, settings: Settings) -> None:
    denied = settings.model_copy(update={"scrape_deny_networks": LOOPBACK_DENY})
    with WebhookServer() as v4, WebhookServer(host="::1") as v6:
        # Receivers stored before the policy changed (or by an older version): refused when connecting.
        hooks = {"v4": v4.url, "v6": v6.url, "named": f"http://localhost:{v4.port}/named"}
        outbox = {n.receiver: n for n in deliver(store, denied, hooks)}
        assert v4.paths == [] and v6.paths == []
    assert {name: (n.outcome, n.last_error) for name, n in outbox.items()} == {
        "v4": ("pending", "refused: 127.0.0.1 is in the denied network 127.0.0.0/8"),
        "v6": ("pending", "refused: ::1 is in the denied network ::1/128"),
        "named": ("pending", "refused: localhost resolves to 127.0.0.1, which is in the denied network 127.0.0.0/8"),
    }


def test_the_same_receivers_are_reached_under_the_default_policy(store: Store, settings: Settings) -> None:
    with WebhookServer() as v4, WebhookServer(host="::1") as v6:
        hooks = {"v4": v4.url, "v6": v6.url, "named": f"http://localhost:{v4.port}/named"}
        outbox = deliver(store, settings, hooks)
        assert sorted(path for path, _ in v4.paths) == ["/hook", "/named"]
        assert [path for path, _ in v6.paths] == ["/hook"]
    assert {n.outcome for n in outbox} == {"sent"}


def test_environment_proxies_are_ignored_and_a_configured_one_is_used(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with WebhookServer() as proxy, WebhookServer() as hook:
        proxy_url = proxy.url.removesuffix("/hook")
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        deliver(store, settings, {"direct": hook.url})
        assert proxy.paths == [] and [path for path, _ in hook.paths] == ["/hook"]

        through = settings.model_copy(update={"notify_proxy": proxy_url})
        deliver(store, through, {"proxied": hook.url.replace("/hook", "/proxied")})
        # Absolute form: the proxy is asked for the URL (the first alert, no longer firing, resolves through it too).
        assert hook.url.replace("/hook", "/proxied") in [path for path, _ in proxy.paths]
        assert all(path.startswith(f"http://127.0.0.1:{hook.port}/") for path, _ in proxy.paths)
        assert [path for path, _ in hook.paths] == ["/hook"]  # nothing more arrived directly


def test_only_a_status_line_is_kept_from_a_reply(
    store: Store, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    secret = b"SECRET-REPLY-BODY " * 10_000
    caplog.set_level(logging.INFO)
    with WebhookServer(statuses=[500], reply=secret) as hook:
        (notification,) = deliver(store, settings, {"noisy": hook.url})
    assert notification.last_error == "HTTP 500 Internal Server Error"
    assert notification.attempts == 1
    logged = [record for record in caplog.records if record.getMessage() == "notification failed"]
    assert [getattr(record, "error", None) for record in logged] == ["HTTP 500 Internal Server Error"]
    assert not any("SECRET" in f"{record.getMessage()} {record.__dict__}" for record in caplog.records)


def test_alertmanager_is_refused_at_connect_when_its_name_resolves_into_a_denied_network(
    store: Store, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with WebhookServer() as manager:
        denied = settings.model_copy(
            update={"scrape_deny_networks": LOOPBACK_DENY, "alertmanager_url": f"http://localhost:{manager.port}"}
        )
        push(store, denied, 2, 0, "a")
        alerting = Alerting(store, denied, [parse_rule(rule(f"value > {N}"))])
        alerting.evaluator.evaluate(T0 + NS)

        async def scenario() -> int:
            await alerting.start()
            try:
                assert alerting.dispatcher is not None
                await alerting.dispatcher.run_once()
                await alerting.dispatcher.drain()
                return await alerting.dispatcher.resend()
            finally:
                await alerting.stop()

        assert asyncio.run(scenario()) == 1
        assert manager.paths == []
    (notification,) = store.alerts.outbox()
    assert notification.last_error == (
        "refused: localhost resolves to 127.0.0.1, which is in the denied network 127.0.0.0/8"
    )
    resent = [r for r in caplog.records if r.getMessage() == "alertmanager re-send failed"]
    assert [getattr(r, "error", None) for r in resent] == [notification.last_error]
