"""Build and run the real Go demo service (examples/demo) for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.tools import ROOT, go_binary

_BUILD_LOCK = threading.Lock()
_BUILT: dict[str, Path] = {}


def build(example: str = "demo") -> Path:
    """``go build`` an example once per test session; standard library only, so no network."""
    with _BUILD_LOCK:
        if example in _BUILT:
            return _BUILT[example]
        out = Path(tempfile.mkdtemp(prefix=f"stackyard-{example}-")) / example
        env = {**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
        subprocess.run(
            [go_binary(), "build", "-trimpath", "-o", str(out), "."],
            cwd=ROOT / "examples" / example,
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        _BUILT[example] = out
        return out


@contextmanager
def running(*flags: str, example: str = "demo", addr: str = "127.0.0.1:0") -> Iterator[str]:
    """Start the service (on a free loopback port unless ``addr`` says); yields its base URL, stops it after."""
    binary = build(example)
    process = subprocess.Popen(
        [str(binary), "-addr", addr, *flags], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if line.startswith("listening on "):
                break
            if process.poll() is not None:
                raise RuntimeError(f"{example} exited with {process.returncode}")
        else:
            raise RuntimeError(f"{example} did not report its address")
        yield "http://" + line.split()[-1]
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
