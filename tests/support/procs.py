"""Real ``stackyard`` processes for fault tests: start one, poll its HTTP endpoints, read its /metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


@contextmanager
def stackyard(args: list[str], env: dict[str, str], cwd: Path | None = None) -> Iterator[subprocess.Popen[str]]:
    """``python -m stackyard ARGS`` with extra environment (in ``cwd``); SIGTERM, then SIGKILL, on the way out.

    Its log goes to a file, not a pipe: nobody reads a pipe while the process
    runs, and a full one (64 KB of log during an outage) would block the
    server's event loop on its next log line.
    """
    with tempfile.TemporaryFile("w+") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "stackyard", *args],
            env={**os.environ, "STACKYARD_LOG_LEVEL": "WARNING", **env},
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            text=True,
            cwd=cwd,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, process: subprocess.Popen[str] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process exited ({process.returncode}) while waiting for {what}")
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def status(url: str) -> int:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return 0


def metric(base_url: str, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels``, from a Prometheus text page."""
    text = httpx.get(base_url + "/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric_name, _, label_text = head.partition("{")
        if metric_name != name:
            continue
        if all(f'{key}="{want}"' in label_text for key, want in labels.items()):
            total += float(value)
    return total
