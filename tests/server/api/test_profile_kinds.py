"""One list of profile kinds for the server, the CLI and the pages; labels pasted with spaces are refused.

The dashboard's forms are built from ``GET /api/v1/profile-kinds`` (checked in the
browser in tests/web/test_web_targets.py); here the endpoint, the API's defaults and the
CLI's help are compared with the one Python list, ``server.scrape.spec.KINDS``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.config.load import load_config
from server.config.problems import ConfigError
from server.scrape.spec import KINDS, PROFILE_PATHS
from stackyard.cli import build_parser
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)


def test_the_endpoint_serves_every_kind_with_its_path_and_default(client: TestClient) -> None:
    response = client.get("/api/v1/profile-kinds")
    assert response.status_code == 200, response.text
    kinds = response.json()["kinds"]
    assert [k["name"] for k in kinds] == [k.name for k in KINDS] == list(PROFILE_PATHS)
    # the two the dashboard's forms used to leave out
    by_name = {k["name"]: k for k in kinds}
    assert by_name["goroutine_dump"]["path"] == "goroutine?debug=2" and by_name["goroutine_dump"]["interval"] == "1m"
    assert by_name["goroutineleak"]["optional"] is True and by_name["goroutineleak"]["default"] is True
    assert by_name["allocs"]["delta"] is True and by_name["cpu"]["timed"] is True and by_name["heap"]["timed"] is False
    assert all(k["description"] for k in kinds)
    # a target that names no profiles gets exactly the default kinds
    created = client.post("/api/v1/targets", json={"url": "http://10.2.0.1:6060", "service": "checkout"}).json()
    assert [p["type"] for p in created["profiles"]] == [k["name"] for k in kinds if k["default"]]
    assert all(p["enabled"] for p in created["profiles"])


def test_the_cli_help_is_derived_from_the_same_list(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["targets", "add", "--help"])
    assert stopped.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for kind in PROFILE_PATHS:
        assert kind in text
    assert "seven" not in text


PASTED = "env=prod version=1"


def test_a_space_separated_paste_is_refused_by_the_targets_api(client: TestClient) -> None:
    response = client.post(
        "/api/v1/targets",
        json={"url": "http://10.2.0.2:6060", "service": "checkout", "labels": {"env": "prod version=1"}},
    )
    assert response.status_code == 422, response.text
    message = response.json()["error"]
    assert message.startswith("labels: the value of 'env' is 'prod version=1'")
    assert "'version' as a label of its own" in message
    assert client.get("/api/v1/targets").json()["targets"] == []  # nothing stored
    # the same through PATCH
    target = client.post("/api/v1/targets", json={"url": "http://10.2.0.2:6060", "service": "checkout"}).json()
    patched = client.patch(f"/api/v1/targets/{target['id']}", json={"labels": {"env": "prod\tversion=1"}})
    assert patched.status_code == 422 and "several labels" in patched.json()["error"]
    assert client.get(f"/api/v1/targets/{target['id']}").json()["labels"] == {}


@pytest.mark.parametrize("value", ["web platform", "--mode=fast", "a=b=c", "x =1"])
def test_values_with_spaces_or_equals_alone_are_kept(client: TestClient, value: str) -> None:
    response = client.post(
        "/api/v1/targets", json={"url": "http://10.2.0.3:6060", "service": "checkout", "labels": {"note": value}}
    )
    assert response.status_code == 201, response.text
    assert response.json()["labels"] == {"note": value}


def test_a_space_separated_paste_is_refused_at_ingest(client: TestClient) -> None:
    response = client.post(
        "/api/v1/ingest",
        params=[("service", "checkout"), ("label", PASTED), ("time", "1790000000")],
        content=(DATA / "heap.pb.gz").read_bytes(),
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("label: the value of 'env' is 'prod version=1'")
    assert "one label per label= parameter" in response.json()["error"]
    assert client.get("/api/v1/series").json()["series"] == []


def test_a_space_separated_paste_is_refused_in_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "stackyard.yaml"
    path.write_text(
        "scrape_configs:\n  - job_name: checkout\n    static_configs:\n      - targets: [h:1]\n"
        '        labels: {env: "prod version=1"}\n'
    )
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert str(refused.value) == (
        f"{path}:5: scrape_configs[0].static_configs[0].labels.env: 'prod version=1' looks like several labels "
        "separated by spaces; give 'version' as a label of its own"
    )
