"""The real commands: `stackyard serve --config` scraping Go, `stackyard collect` pushing to it, sharding, traces."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from server.scrape.spec import TargetSpec, in_shard
from tests.support.godemo import running
from tests.support.pgserver import free_port


@contextmanager
def stackyard(args: list[str], env: dict[str, str], ready_url: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "stackyard", *args],
        env={**os.environ, "STACKYARD_LOG_LEVEL": "WARNING", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"stackyard {args[0]} exited: {process.stderr.read() if process.stderr else ''}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError(f"stackyard {args[0]} did not become ready")
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _spawned_workers(pid: int) -> list[int]:
    """Child processes started by multiprocessing's spawn (the ingest workers), its resource tracker left out."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid and b"multiprocessing.spawn" in command and b"resource_tracker" not in command:
            found.append(int(entry.name))
    return found


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("ingest_processes", ["0", "2"], ids=["in-process", "ingest-workers"])
def test_serve_scrapes_collect_pushes_and_traces_download(tmp_path: Path, ingest_processes: str) -> None:
    port, collector_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"STACKYARD_DATABASE_URL": f"sqlite:///{tmp_path / 'db' / 's.db'}", "STACKYARD_SCRAPE_SYNC_INTERVAL": "1"}
    with running("-leak-rate", "5") as scraped, running() as pushed:
        serve_config = tmp_path / "serve.yaml"
        serve_config.write_text(
            "scrape_configs:\n  - job_name: from-config\n    scrape_interval: 2s\n"
            "    profiles: {cpu: {enabled: false}, allocs: {enabled: false}, mutex: {enabled: false},"
            " block: {enabled: false}, threadcreate: {enabled: false}}\n"
            f"    static_configs:\n      - targets: ['{scraped.removeprefix('http://')}']\n"
        )
        collect_config = tmp_path / "collect.yaml"
        collect_config.write_text(
            "scrape_configs:\n  - job_name: pushed\n    scrape_interval: 2s\n"
            "    profiles: {cpu: {enabled: false}, allocs: {enabled: false}, mutex: {enabled: false},"
            " block: {enabled: false}, threadcreate: {enabled: false}}\n"
            f"    static_configs:\n      - targets: ['{pushed.removeprefix('http://')}']\n"
        )
        serve_args = [
            "serve",
            "--port",
            str(port),
            "--config",
            str(serve_config),
            "--ingest-processes",
            ingest_processes,
        ]
        with stackyard(serve_args, env, f"{base}/readyz") as server:
            assert len(_spawned_workers(server.pid)) == int(ingest_processes)

            # The config target is scraped by the server itself.
            def config_target_up() -> bool:
                targets = httpx.get(f"{base}/api/v1/targets", timeout=30).json()["targets"]
                return any(t["service"] == "from-config" and t["up"] for t in targets)

            _wait_for(config_target_up, 30, "the config target to be up")

            def scraped_stored() -> bool:
                params = {"type": "goroutine", "query": '{service="from-config"}', "from": "now-5m"}
                return bool(httpx.get(f"{base}/api/v1/top", params=params, timeout=30).json()["profiles"] >= 1)

            _wait_for(scraped_stored, 30, "scraped profiles stored")

            # A collector process pushes another service's profiles to the server.
            collect_args = [
                "collect",
                "--push-url",
                base,
                "--config",
                str(collect_config),
                "--listen",
                f"127.0.0.1:{collector_port}",
                "--shutdown-deadline",
                "5",
            ]
            with stackyard(collect_args, {}, f"http://127.0.0.1:{collector_port}/metrics") as collector:

                def pushed_arrived() -> bool:
                    params = {"type": "goroutine", "query": '{service="pushed"}', "from": "now-5m"}
                    return bool(httpx.get(f"{base}/api/v1/top", params=params, timeout=30).json()["profiles"] >= 1)

                _wait_for(pushed_arrived, 30, "pushed profiles")
                metrics = httpx.get(f"http://127.0.0.1:{collector_port}/metrics", timeout=30).text
                assert "stackyard_scrapes_total{kind=" in metrics and 'result="success"' in metrics
                collector.send_signal(signal.SIGTERM)
                assert collector.wait(timeout=20) == 0, "graceful shutdown exits cleanly"

            top = httpx.get(
                f"{base}/api/v1/top",
                params={"type": "goroutine", "query": '{service="pushed"}', "from": "now-5m"},
                timeout=30,
            ).json()
            assert top["profiles"] >= 1 and top["total"] > 0

            # A trace captured on demand downloads as a Go execution trace.
            created = httpx.post(
                f"{base}/api/v1/targets", json={"url": scraped, "service": "traced", "interval": "1m"}, timeout=30
            )
            assert created.status_code == 201, created.text
            trace = httpx.post(f"{base}/api/v1/targets/{created.json()['id']}/trace", params={"seconds": 1}, timeout=30)
            assert trace.status_code == 201, trace.text
            download = httpx.get(base + trace.json()["download"], timeout=30)
            assert download.status_code == 200
            assert download.content.startswith(b"go 1.") and b" trace\x00" in download.content[:16]
            assert len(download.content) == trace.json()["size"]

            bad = httpx.post(f"{base}/api/v1/targets", json={"url": "ftp://x", "service": "s"}, timeout=30)
            assert bad.status_code == 422


def test_shards_split_targets_without_overlap() -> None:
    targets = [TargetSpec(f"http://10.0.{i // 250}.{i % 250}:6060", "svc") for i in range(1000)]
    shards = 3
    owners = [[s for s in range(shards) if in_shard(t, s, shards)] for t in targets]
    assert all(len(o) == 1 for o in owners), "every target belongs to exactly one shard"
    sizes = [sum(1 for o in owners if o == [s]) for s in range(shards)]
    assert min(sizes) > 250, sizes  # roughly even
