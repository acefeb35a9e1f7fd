"""Registering targets over HTTP: defaults, validation, conflicts, persistence, pasted pprof URLs.

The ``stackyard targets`` command is a client of this API: tests/stackyard/test_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.config.load import load_config
from server.scrape.spec import ProfileSpec
from server.store.repository import Store


def _create(client: TestClient, **body: object) -> dict[str, object]:
    response = client.post("/api/v1/targets", json={"url": "http://127.0.0.1:6060", "service": "checkout", **body})
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


def test_create_with_defaults(client: TestClient) -> None:
    target = _create(client, labels={"env": "prod"})
    assert target["interval"] == "15s"
    assert target["path_prefix"] == "/debug/pprof"
    assert [p["type"] for p in target["profiles"]] == [  # type: ignore[attr-defined]
        "cpu",
        "heap",
        "allocs",
        "goroutine",
        "mutex",
        "block",
        "threadcreate",
        "goroutine_dump",
        "goroutineleak",
    ]
    assert target["instance"] == "127.0.0.1:6060"
    assert target["labels"] == {"env": "prod"}
    assert target["source"] == "api"
    assert isinstance(target["id"], int)
    assert target["owner"] is None  # no replicas sharing the targets (tests/stackyard/test_replicas.py has them)


def test_get_patch_delete(client: TestClient) -> None:
    target = _create(client, interval="30s", profiles=["cpu", {"type": "heap", "enabled": False}])
    path = f"/api/v1/targets/{target['id']}"
    fetched = client.get(path).json()
    assert fetched["interval"] == "30s"
    assert fetched["profiles"][1] == {"type": "heap", "enabled": False, "path": None, "seconds": None}
    patched = client.patch(path, json={"paused": True, "interval": "1m"}).json()
    assert patched["paused"] is True and patched["interval"] == "1m"
    # The two fields with a default can be set, left alone by a PATCH that does not name them, and cleared.
    limited = client.patch(path, json={"timeout": "5s", "max_response_bytes": 1000}).json()
    assert (limited["timeout"], limited["max_response_bytes"]) == ("5s", 1000)
    assert client.patch(path, json={"interval": "2m"}).json()["timeout"] == "5s"
    cleared = client.patch(path, json={"timeout": None, "max_response_bytes": None}).json()
    assert (cleared["timeout"], cleared["max_response_bytes"]) == (None, None)
    assert cleared["interval"] == "2m" and cleared["paused"] is True
    assert client.get("/api/v1/targets").json()["targets"][0]["paused"] is True
    assert client.delete(path).status_code == 204
    assert client.get(path).status_code == 404
    assert client.delete(path).status_code == 404


def test_duplicate_is_409(client: TestClient) -> None:
    _create(client)
    response = client.post("/api/v1/targets", json={"url": "http://127.0.0.1:6060", "service": "checkout"})
    assert response.status_code == 409
    assert "already exists" in response.json()["error"]
    other_service = client.post("/api/v1/targets", json={"url": "http://127.0.0.1:6060", "service": "other"})
    assert other_service.status_code == 201


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"url": "ftp://host:21"}, "scheme 'ftp' is not allowed"),
        ({"url": "file:///etc/passwd"}, "scheme 'file' is not allowed"),
        ({"url": "not a url"}, "must not contain spaces"),
        ({"url": "localhost:6060"}, "scheme 'localhost' is not allowed"),
        ({"url": "http://"}, "has no host"),
        ({"url": "http://host:99999"}, "is not a valid URL"),
        ({"url": "http://h:1/x?y=1"}, "base URL only"),
        ({"interval": "soon"}, "interval: 'soon' is not a duration"),
        ({"interval": "100ms"}, "between 1s and 24h"),
        ({"profiles": ["cpu", "wall"]}, "unknown profile type 'wall'"),
        ({"labels": {"bad-name": "x"}}, "not a valid label name"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_invalid_targets_are_422(client: TestClient, body: dict[str, object], message: str) -> None:
    response = client.post("/api/v1/targets", json={"url": "http://127.0.0.1:6060", "service": "s", **body})
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]


def test_targets_persist_across_app_restarts(client: TestClient, store: Store, database_url: str) -> None:
    created = _create(client)
    again = Store.from_url(database_url)
    try:
        assert [t.id for t in again.targets.list()] == [created["id"]]
    finally:
        again.close()


def test_a_pasted_pprof_url_is_scraped_under_its_prefix_once(client: TestClient, tmp_path: Path) -> None:
    """``http://host:6060/debug/pprof/`` was scraped at ``/debug/pprof/debug/pprof/heap`` and 404ed."""
    pasted = _create(client, url="http://127.0.0.1:6060/debug/pprof/")
    assert (pasted["url"], pasted["path_prefix"]) == ("http://127.0.0.1:6060", "/debug/pprof")
    behind_proxy = _create(client, url="http://127.0.0.1:6061/app/debug/pprof", service="proxied")
    assert behind_proxy["url"] == "http://127.0.0.1:6061/app"
    own_prefix = _create(client, url="http://127.0.0.1:6062/internal/pprof/", path_prefix="/internal/pprof")
    assert (own_prefix["url"], own_prefix["path_prefix"]) == ("http://127.0.0.1:6062", "/internal/pprof")
    plain = _create(client, url="http://127.0.0.1:6063/app", service="plain")
    assert plain["url"] == "http://127.0.0.1:6063/app"  # another path stays: scraped at /app/debug/pprof/...
    # A profile's own URL is refused, saying what to give instead.
    one_profile = client.post("/api/v1/targets", json={"url": "http://127.0.0.1:6064/debug/pprof/heap", "service": "s"})
    assert one_profile.status_code == 422
    assert one_profile.json()["error"] == (
        "url: http://127.0.0.1:6064/debug/pprof/heap is the URL of one profile; give the service's base URL "
        "(http://127.0.0.1:6064): every profile kind is scraped under it, at path_prefix /debug/pprof/"
    )
    # A change goes through the same check.
    patched = client.patch(f"/api/v1/targets/{plain['id']}", json={"url": "http://127.0.0.1:6065/debug/pprof"})
    assert patched.status_code == 200 and patched.json()["url"] == "http://127.0.0.1:6065"
    # And so does the config file.
    config = tmp_path / "stackyard.yaml"
    config.write_text(
        "scrape_configs:\n  - job_name: pasted\n"
        "    static_configs:\n      - targets: ['http://127.0.0.1:6066/debug/pprof/']\n"
    )
    (from_file,) = load_config(config).targets
    assert (from_file.url, from_file.path_prefix) == ("http://127.0.0.1:6066", "/debug/pprof")
    assert from_file.url_for(ProfileSpec("heap"), None) == "http://127.0.0.1:6066/debug/pprof/heap"
