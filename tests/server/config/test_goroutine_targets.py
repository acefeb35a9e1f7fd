"""The goroutine kinds in target definitions: defaults, per-kind intervals from the API and the config file."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.config.load import load_config
from server.config.problems import ConfigError
from server.scrape.spec import ProfileSpec, TargetSpec


def test_dump_defaults() -> None:
    target = TargetSpec("http://127.0.0.1:6060", "shop", interval_s=15.0)
    kinds = {p.kind: p for p in target.enabled_profiles()}
    assert {"goroutine_dump", "goroutineleak"} <= set(kinds)
    assert target.url_for(kinds["goroutine_dump"], None) == "http://127.0.0.1:6060/debug/pprof/goroutine?debug=2"
    assert target.url_for(kinds["goroutineleak"], None) == "http://127.0.0.1:6060/debug/pprof/goroutineleak"
    assert target.interval_for(kinds["goroutine_dump"]) == 60.0  # its own default, whatever the target's
    assert target.interval_for(kinds["goroutineleak"]) == 15.0
    assert target.interval_for(ProfileSpec("goroutine_dump", interval_s=5.0)) == 5.0
    assert target.timeout_for(kinds["goroutine_dump"]) == 10.0


def test_api_takes_a_per_kind_interval(client: TestClient) -> None:
    body = {
        "url": "http://127.0.0.1:6060",
        "service": "shop",
        "profiles": [
            "heap",
            {"type": "goroutine_dump", "interval": "30s"},
            {"type": "goroutineleak", "enabled": False},
        ],
    }
    created = client.post("/api/v1/targets", json=body)
    assert created.status_code == 201, created.text
    profiles = client.get(f"/api/v1/targets/{created.json()['id']}").json()["profiles"]
    assert profiles[1] == {"type": "goroutine_dump", "enabled": True, "path": None, "seconds": None, "interval": "30s"}
    assert profiles[2]["enabled"] is False and "interval" not in profiles[2]
    for interval, message in (("0s", "between 1s and 24h"), ("soon", "profiles")):
        body["profiles"] = [{"type": "goroutine_dump", "interval": interval}]
        refused = client.post("/api/v1/targets", json={**body, "url": "http://127.0.0.1:6061"})
        assert refused.status_code == 422, refused.text
        assert message in refused.json()["error"]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_config_takes_a_per_kind_interval(tmp_path: Path) -> None:
    path = write(
        tmp_path / "stackyard.yaml",
        """
        scrape_configs:
          - job_name: shop
            scrape_interval: 15s
            profiles:
              goroutine_dump: {interval: 30s}
              goroutineleak: {enabled: false}
            static_configs:
              - targets: ['127.0.0.1:6060']
        """,
    )
    (target,) = load_config(path).targets
    kinds = {p.kind: p for p in target.profiles}
    assert kinds["goroutine_dump"] == ProfileSpec("goroutine_dump", interval_s=30.0)
    assert target.interval_for(kinds["goroutine_dump"]) == 30.0
    assert [p.kind for p in target.enabled_profiles()][-1] == "goroutine_dump"


@pytest.mark.parametrize(("value", "message"), [("500ms", "out of range"), ("30", "has no unit")])
def test_config_refuses_a_bad_kind_interval(tmp_path: Path, value: str, message: str) -> None:
    path = write(
        tmp_path / "stackyard.yaml",
        f"""
        scrape_configs:
          - job_name: shop
            profiles:
              goroutine_dump: {{interval: {value}}}
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "scrape_configs[0].profiles.goroutine_dump.interval" in str(info.value)
    assert message in str(info.value)
